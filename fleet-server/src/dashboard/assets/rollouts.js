// The rollouts page (#/rollouts): each rollout's state, its progress per wave (devices,
// succeeded, failed, rolled back, ...) and ops' pause, resume and abort
// (docs/design/updates.md). Uses h(), api(), every() and t() from app.js and i18n.js.
"use strict";

const WAVE_COLUMNS = ["devices", "pending", "ordered", "updated", "succeeded", "failed", "rolled_back", "unreachable", "withdrawn"];

function rolloutStateBadge(state) {
  const tone = { running: "online", done: "online", paused: "paused", aborted: "offline" }[state] || "";
  return h("span", { class: "state " + tone, "data-state": state }, t("ro.state." + state));
}

function waveName(w) {
  return w === 0 ? t("ro.canary") : t("ro.wave", w);
}

function progressTable(progress, open) {
  return h("table", { class: "waves" },
    h("thead", {}, h("tr", {}, h("th", {}, t("ro.col.wave")),
      ...WAVE_COLUMNS.map((c) => h("th", { class: "num" }, t("ro.col." + c))))),
    h("tbody", {}, progress.map((w) => h("tr", { "data-wave": w.wave, class: w.wave === open ? "open" : null },
      h("td", {}, waveName(w.wave)),
      ...WAVE_COLUMNS.map((c) => h("td", { class: "num " + (w[c] ? c : "zero"), "data-count": c }, w[c]))))));
}

/** A button that asks once more before it acts (abort cannot be undone). */
function confirmButton(label, confirmLabel, cls, act) {
  const b = h("button", { type: "button", class: cls });
  b.textContent = label;
  let armed = false;
  b.addEventListener("click", () => {
    if (!armed) {
      armed = true;
      b.textContent = confirmLabel;
      b.classList.add("armed");
      setTimeout(() => { armed = false; b.textContent = label; b.classList.remove("armed"); }, 5000);
      return;
    }
    act();
  });
  return b;
}

function rolloutCard(r, reload, report) {
  const act = (action) => async () => {
    try {
      await api("/api/v1/rollouts/" + r.id + "/" + action, { method: "POST" });
      reload();
    } catch (e) { report(e); }
  };
  const buttons = [];
  if (r.state === "running") buttons.push(h("button", { type: "button", class: "pause", onclick: act("pause") }, t("ro.pause")));
  if (r.state === "paused") buttons.push(h("button", { type: "button", class: "resume", onclick: act("resume") }, t("ro.resume")));
  if (r.state === "running" || r.state === "paused") {
    buttons.push(confirmButton(t("ro.abort"), t("ro.abort_confirm"), "abort", act("abort")));
  }
  const spec = r.spec;
  return h("section", { class: "card rollout", "data-rollout": r.id, "data-state": r.state },
    h("h2", {}, t("ro.title", r.id, spec.version), " ", rolloutStateBadge(r.state)),
    r.reason ? h("p", { class: r.state === "paused" ? "error reason" : "muted reason" }, r.reason) : null,
    h("p", { class: "muted" }, t("ro.spec", spec.group || t("ro.all_devices"), spec.canary, spec.waves.join(" → "),
      spec.gate, spec.failure_threshold), " · ", t("ro.started", fmtTime(r.created_ms), r.created_by)),
    progressTable(r.progress, r.state === "running" || r.state === "paused" ? r.wave : -1),
    buttons.length ? h("div", { class: "actions" }, buttons) : null);
}

function showRollouts() {
  document.getElementById("logout").hidden = false;
  const list = h("div", { id: "rollouts" });
  const status = h("div", { id: "rollouts-status" });
  show(h("p", {}, h("a", { href: "#/" }, t("device.back"))), h("h1", {}, t("ro.page")), status, list);
  const gen = generation;
  const report = (e) => status.replaceChildren(errorLine(e) || "");
  const load = async () => {
    try {
      const body = await api("/api/v1/rollouts");
      if (gen !== generation) return;
      status.replaceChildren(body.rollouts.length ? "" : h("p", { class: "muted" }, t("ro.none")));
      list.replaceChildren(...body.rollouts.map((r) => rolloutCard(r, load, report)));
    } catch (e) {
      if (gen === generation) report(e);
    }
  };
  every(3000, load);
}
