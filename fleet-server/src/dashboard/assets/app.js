// The ops dashboard: one page, hash routes (#/login, #/, #/device/{id}, #/rollouts,
// #/cameras, #/camera/{device}/{camera}). Data from the
// fleet API with the session cookie; no framework, no build step (docs/design/dashboard.md).
"use strict";

/** Builds an element: h("td", {class: "num"}, "12"). Text is always set as text, never as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class Unauthorized extends Error {}

/** A call to the fleet API; a 401 sends the person to the login page. */
async function api(path, options = {}) {
  const resp = await fetch(path, { credentials: "same-origin", ...options });
  if (resp.status === 401 && path !== "/api/v1/login") {
    localStorage.removeItem("simpul.user");
    if (!location.hash.startsWith("#/login")) location.hash = "#/login";
    throw new Unauthorized("401");
  }
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!resp.ok) {
    const err = new Error((body && body.error) || resp.status + " " + resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return body;
}

// Timers and clean-ups of the page shown; run when the route changes.
let timers = [];
let leaving = [];
let generation = 0;
function every(ms, f) { f(); timers.push(setInterval(f, ms)); }
function onLeave(f) { leaving.push(f); }
function clearTimers() {
  timers.forEach(clearInterval);
  leaving.forEach((f) => f());
  timers = [];
  leaving = [];
  generation += 1;
}

function main() { return document.getElementById("app"); }
function show(...nodes) { main().replaceChildren(...nodes); }

function errorLine(e) {
  if (e instanceof Unauthorized) return null;
  return h("p", { class: "error", role: "alert" }, t("error.load", e.message));
}

function stateBadge(online) {
  return h("span", { class: "state " + (online ? "online" : "offline"), "data-online": String(online) },
    online ? t("state.online") : t("state.offline"));
}

const SERIOUS = new Set(["stale_data", "water_level", "heat"]);
function alertBadges(alerts) {
  return alerts.map((a) => h("span", {
    class: "badge" + (SERIOUS.has(a.kind) ? " serious" : ""), title: a.message, "data-alert": a.kind,
  }, t("alert." + a.kind)));
}

// ---- login ----

function showLogin() {
  document.getElementById("logout").hidden = true;
  const error = h("p", { class: "error", id: "login-error", role: "alert" });
  const form = h("form", { class: "login card", id: "login-form" },
    h("h1", {}, t("login.title")),
    h("label", { for: "username" }, t("login.username")),
    h("input", { id: "username", name: "username", autocomplete: "username", required: true }),
    h("label", { for: "password" }, t("login.password")),
    h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true }),
    h("button", { type: "submit", id: "login-submit" }, t("login.submit")),
    error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const body = JSON.stringify({ username: form.username.value, password: form.password.value });
    try {
      const who = await api("/api/v1/login", { method: "POST", headers: { "content-type": "application/json" }, body });
      localStorage.setItem("simpul.user", who.user);
      location.hash = "#/";
    } catch (e) {
      error.textContent = e.status === 401 ? t("login.wrong") : t("login.failed", e.message);
    }
  });
  show(form);
  form.username.focus();
}

async function logout() {
  try { await api("/api/v1/logout", { method: "POST" }); } catch (_) { /* gone already */ }
  localStorage.removeItem("simpul.user");
  location.hash = "#/login";
}

// ---- the fleet list ----

function showFleet() {
  document.getElementById("logout").hidden = false;
  const tbody = h("tbody", { id: "devices" });
  const status = h("div", { id: "fleet-status" });
  show(
    h("h1", {}, t("fleet.title")),
    status,
    h("table", { class: "card", id: "fleet-table" },
      h("thead", {}, h("tr", {},
        h("th", {}, t("col.device")), h("th", {}, t("col.state")), h("th", {}, t("col.last_seen")),
        h("th", {}, t("col.version")), h("th", { class: "num" }, t("col.buffer")), h("th", {}, t("col.alerts")))),
      tbody));
  const gen = generation;
  every(5000, async () => {
    try {
      const list = await api("/api/v1/devices");
      if (gen !== generation) return;
      document.getElementById("fleet-summary").textContent = t("fleet.summary", list.online, list.devices.length);
      status.replaceChildren(list.devices.length ? "" : h("p", { class: "muted" }, t("fleet.empty")));
      const now = Date.now();
      tbody.replaceChildren(...list.devices.map((d) => {
        const link = "#/device/" + encodeURIComponent(d.device);
        return h("tr", { class: "device-row", "data-device": d.device, "data-online": String(d.online) },
          h("td", {}, h("a", { href: link }, d.device)),
          h("td", {}, stateBadge(d.online)),
          h("td", { title: fmtTime(d.last_seen_ms) }, fmtAgo(d.last_seen_ms, now)),
          h("td", {}, d.health ? d.health.version : "–"),
          h("td", { class: "num" }, d.health && d.health.buffer_depth !== null ? fmtNum(d.health.buffer_depth) : "–"),
          h("td", { class: "alerts" }, alertBadges(d.alerts)));
      }));
    } catch (e) {
      if (gen === generation) status.replaceChildren(errorLine(e) || "");
    }
  });
}

// ---- one device ----

const RANGES = { "1h": 3600e3, "6h": 6 * 3600e3, "24h": 24 * 3600e3, "7d": 7 * 24 * 3600e3 };
let chartRange = "6h";

function dl(pairs) {
  return h("dl", { class: "grid" }, pairs.filter((p) => p[1] !== undefined).map(([k, v, id]) =>
    h("div", { "data-field": id || k }, h("dt", {}, t(k)), h("dd", {}, v))));
}

function bytes(n) {
  if (n === null || n === undefined) return t("unknown");
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return fmtNum(n, i ? 1 : 0) + " " + units[i];
}

function healthCard(entry, latest) {
  const hb = latest ? latest.heartbeat : null;
  const hs = entry && entry.health;
  if (!hb) return h("p", { class: "muted" }, t("never"));
  const sys = hb.system || {};
  const thr = sys.throttled;
  const throttledNow = thr ? (thr.under_voltage_now || thr.freq_capped_now || thr.throttled_now || thr.soft_temp_limit_now) : null;
  const sensors = Object.entries(hb.sensors || {}).map(([name, s]) => h("div", { "data-sensor": name },
    name + ": " + t("sensor." + s.state) +
    (s.last_values ? " · " + Object.entries(s.last_values).map(([m, v]) => m + " " + fmtNum(v)).join(", ") : "") +
    (s.error ? " (" + s.error + ")" : "")));
  const cameras = Object.entries(hb.cameras || {}).map(([name, c]) => h("div", { "data-camera": name, "data-state": c.state || "unknown" },
    name + ": " + t("camera." + (c.state || "unknown")) +
    (c.video ? " · " + c.video : "") +
    (c.error ? " (" + c.error + ")" : "")));
  return h("div", {},
    dl([
      ["h.received", fmtTime(latest.at_ms) + " (" + fmtAgo(latest.at_ms) + ")"],
      ["h.version", hb.version],
      ["h.uptime", fmtDuration(hb.uptime_s)],
      ["h.buffer", hb.buffer_depth === undefined || hb.buffer_depth === null ? t("unknown") : fmtNum(hb.buffer_depth)],
      ["h.oldest", hb.oldest_unsent_age_s === undefined || hb.oldest_unsent_age_s === null ? "–" : fmtDuration(hb.oldest_unsent_age_s)],
      ["h.temp", sys.soc_temp_c === undefined || sys.soc_temp_c === null ? t("unknown") : fmtNum(sys.soc_temp_c, 1) + " °C"],
      ["h.throttled", throttledNow === null ? t("unknown") : throttledNow ? t("yes") : t("no")],
      ["h.memory", sys.mem_used_bytes !== undefined && sys.mem_used_bytes !== null ? bytes(sys.mem_used_bytes) + (sys.mem_total_bytes ? " / " + bytes(sys.mem_total_bytes) : "") : t("unknown")],
      ["h.disk", sys.disk_total_bytes && sys.disk_used_bytes !== undefined && sys.disk_used_bytes !== null ? bytes(sys.disk_total_bytes - sys.disk_used_bytes) : t("unknown")],
      ["h.link", hb.link ? (hb.link.connected ? t("state.online") : t("state.offline")) : t("unknown")],
      ["h.config", hb.config_version === undefined || hb.config_version === null ? "–" : String(hb.config_version)],
    ]),
    h("h3", {}, t("h.sensors")),
    sensors.length ? sensors : h("p", { class: "muted" }, "–"),
    cameras.length ? h("h3", {}, t("h.cameras")) : null,
    ...cameras,
    hs && entry.alerts.length ? h("p", {}, alertBadges(entry.alerts)) : null);
}

/** Buffer depth and SoC temperature over the heartbeats, as two small charts. */
function healthHistoryCharts(beats) {
  if (beats.length < 2) return null;
  const asc = beats.slice().reverse();
  const since = asc[0].at_ms, until = asc[asc.length - 1].at_ms;
  const toSeries = (metric, unit, get) => ({
    sensor: t("device.health"), metric, unit,
    points: asc.map((b) => ({ v: get(b.heartbeat), ms: b.at_ms })).filter((p) => p.v !== undefined && p.v !== null)
      .map((p) => ({ minute_ms: p.ms - 30000, n: 1, min: p.v, max: p.v, avg: p.v })),
  });
  const parts = [
    toSeries(t("h.buffer"), "", (hb) => hb.buffer_depth),
    toSeries(t("h.temp"), "°C", (hb) => hb.system && hb.system.soc_temp_c),
  ].filter((s) => s.points.length);
  return h("div", { class: "charts" }, parts.map((s) => h("div", { class: "chart" },
    h("h3", {}, s.metric), drawChart(s, since, until))));
}

function eventText(e) {
  const d = e.detail || {};
  switch (e.kind) {
    case "sensor_proposed": return (d.port || "") + (d.summary ? ": " + d.summary : "");
    case "config_rolled_back": return "v" + d.version + " → v" + d.running + (d.reason ? ": " + d.reason : "");
    case "sensor_disconnected": case "sensor_connected": return d.sensor || "";
    case "buffer_evicted": return JSON.stringify(d);
    default: return JSON.stringify(d);
  }
}

/** A proposal's state: accepted (as which sensor, in which version), or a button to accept it. */
function proposalCell(device, e, reload) {
  if (e.kind !== "sensor_proposed") return null;
  if (e.accepted) return h("span", { class: "accepted" }, t("prop.accepted", e.accepted.sensor_id, e.accepted.version));
  const error = h("span", { class: "error", role: "alert" });
  const button = h("button", { type: "button", class: "accept", "data-proposal": e.id, onclick: async () => {
    button.disabled = true;
    try {
      await api(`/api/v1/devices/${encodeURIComponent(device)}/proposals/${e.id}/accept`, {
        method: "POST", headers: { "content-type": "application/json" }, body: "{}",
      });
      reload();
    } catch (err) {
      button.disabled = false;
      error.textContent = err.status === 403 ? t("prop.ops_only") : t("error.load", err.message);
    }
  } }, t("prop.accept"));
  return h("span", {}, button, " ", error);
}

function eventsCard(device, events, reload) {
  if (!events.length) return h("p", { class: "muted" }, t("device.no_events"));
  return h("table", { id: "events-table" }, h("tbody", {}, events.map((e) => h("tr", { "data-event": e.kind },
    h("td", {}, fmtTime(e.at_ms)), h("td", {}, t("ev." + e.kind)), h("td", {}, eventText(e)),
    h("td", {}, proposalCell(device, e, reload))))));
}

function configCard(cfg, history) {
  if (!cfg) return h("p", { class: "muted" }, t("device.no_config"));
  const rep = cfg.reported;
  return h("div", {},
    dl([
      ["cfg.group", cfg.group || "–"],
      ["cfg.desired", cfg.desired ? "v" + cfg.desired.version + " · " + fmtTime(cfg.desired.at_ms) + " · " + t("cfg.by", cfg.desired.author) : "–"],
      ["cfg.reported", rep ? "v" + rep.version + " · " + t("cfg.state." + rep.state) + (rep.error ? " (" + rep.error + ")" : "") : "–"],
    ]),
    h("p", {}, cfg.running_latest ? t("cfg.running_latest") : t("cfg.not_latest")),
    cfg.desired ? h("pre", { class: "toml" }, cfg.desired.toml) : null,
    history && history.versions.length ? h("div", {},
      h("h3", {}, t("cfg.history")),
      h("table", { id: "config-history" }, h("tbody", {}, history.versions.map((v) => h("tr", {},
        h("td", {}, "v" + v.version), h("td", {}, fmtTime(v.at_ms)), h("td", {}, v.author), h("td", {}, v.comment))))))
      : null);
}

function showDevice(device) {
  document.getElementById("logout").hidden = false;
  const enc = encodeURIComponent(device);
  const head = h("div", { id: "device-head" });
  const charts = h("div", { id: "charts", class: "charts" }, t("loading"));
  const ranges = h("div", { class: "ranges" }, Object.keys(RANGES).map((r) => h("button", {
    type: "button", "data-range": r, class: r === chartRange ? "on" : "",
    onclick: () => { chartRange = r; ranges.querySelectorAll("button").forEach((b) => b.classList.toggle("on", b.dataset.range === r)); loadCharts(); },
  }, t("range." + r))));
  const health = h("div", { id: "health" }, t("loading"));
  const history = h("div", { id: "health-history" });
  const events = h("div", { id: "events" }, t("loading"));
  const config = h("div", { id: "config" }, t("loading"));
  const cameras = h("div", { id: "camera-grid" });
  show(
    h("p", {}, h("a", { href: "#/" }, t("device.back"))),
    head,
    h("section", { class: "card" }, h("h2", {}, t("device.charts")), ranges, charts),
    h("section", { class: "card" }, h("h2", {}, t("device.health")), health, h("h3", {}, t("device.history")), history),
    h("section", { class: "card" }, h("h2", {}, t("h.cameras")), cameras),
    h("section", { class: "card" }, h("h2", {}, t("device.events")), events),
    h("section", { class: "card" }, h("h2", {}, t("device.config")), config));
  const gen = generation;
  const live = () => gen === generation;

  async function loadCharts() {
    const until = Date.now(), since = until - RANGES[chartRange];
    try {
      const data = await api(`/api/v1/devices/${enc}/series?since=${Math.floor(since)}&until=${Math.floor(until)}`);
      if (!live()) return;
      const drawn = data.series.filter((s) => s.points.length).map((s) => h("div", { class: "chart" },
        h("h3", {}, `${s.sensor} · ${s.metric} (${s.unit})`), drawChart(s, since, until)));
      charts.replaceChildren(...(drawn.length ? drawn : [h("p", { class: "muted", id: "no-readings" }, t("device.no_readings"))]));
    } catch (e) { if (live()) charts.replaceChildren(errorLine(e) || ""); }
  }

  async function loadStatus() {
    try {
      const [list, beats, evs] = await Promise.all([
        api("/api/v1/devices"),
        api(`/api/v1/devices/${enc}/health?limit=360`),
        api(`/api/v1/devices/${enc}/events?limit=50`),
      ]);
      if (!live()) return;
      const entry = list.devices.find((d) => d.device === device);
      document.getElementById("fleet-summary").textContent = t("fleet.summary", list.online, list.devices.length);
      head.replaceChildren(h("h1", {}, device, " ", entry ? stateBadge(entry.online) : ""),
        entry ? h("p", { class: "muted" }, t("col.last_seen") + ": " + fmtTime(entry.last_seen_ms) + " (" + fmtAgo(entry.last_seen_ms) + ")") : "");
      health.replaceChildren(healthCard(entry, beats.heartbeats[0]));
      history.replaceChildren(healthHistoryCharts(beats.heartbeats) || "");
      events.replaceChildren(eventsCard(device, evs.events, () => { loadStatus(); loadConfig(); }));
    } catch (e) { if (live()) head.replaceChildren(errorLine(e) || ""); }
  }

  async function loadConfig() {
    try {
      const [cfg, hist] = await Promise.all([
        api(`/api/v1/devices/${enc}/config`).catch((e) => { if (e.status === 404) return null; throw e; }),
        api(`/api/v1/devices/${enc}/config/history?limit=20`),
      ]);
      if (live()) config.replaceChildren(configCard(cfg, hist));
    } catch (e) { if (live()) config.replaceChildren(errorLine(e) || ""); }
  }

  every(5000, loadStatus);
  every(30000, loadCharts);
  every(30000, loadConfig);
  cameraGrid(cameras, device);
}

// ---- start ----

function route() {
  clearTimers();
  const hash = location.hash || "#/";
  const m = hash.match(/^#\/device\/(.+)$/);
  const cam = hash.match(/^#\/camera\/([^/]+)\/([^/]+)$/);
  if (hash.startsWith("#/login")) showLogin();
  else if (hash.startsWith("#/rollouts")) showRollouts();
  else if (hash.startsWith("#/cameras")) showCameras();
  else if (cam) showCamera(decodeURIComponent(cam[1]), decodeURIComponent(cam[2]));
  else if (m) showDevice(decodeURIComponent(m[1]));
  else showFleet();
}

function labels() {
  document.documentElement.lang = currentLang();
  const sw = document.getElementById("lang-switch");
  sw.textContent = t("lang.switch");
  document.getElementById("logout").textContent = t("nav.logout");
  document.getElementById("nav-rollouts").textContent = t("ro.nav");
  document.getElementById("nav-cameras").textContent = t("cam.nav");
}

function tick() {
  document.getElementById("clock").textContent = fmtTime(Date.now(), false);
}

async function start() {
  try {
    const s = await fetch("/dashboard/settings.json").then((r) => r.json());
    Object.assign(SITE, s);
  } catch (_) { /* WIB it is */ }
  document.getElementById("lang-switch").addEventListener("click", () => {
    setLang(currentLang() === "id" ? "en" : "id");
    labels();
    route();
  });
  document.getElementById("logout").addEventListener("click", logout);
  labels();
  tick();
  setInterval(tick, 10000);
  window.addEventListener("hashchange", route);
  route();
}

document.addEventListener("DOMContentLoaded", start);
