// The camera pages (docs/design/cameras.md). #/cameras: every box's cameras as a grid of
// snapshots, one section per box (a box is a site: one kelurahan office). #/camera/{device}/{camera}:
// one camera live, the fleet's fragmented MP4 fed into Media Source Extensions as the camera
// sent it (no transcoding anywhere). Uses h(), api(), show(), every(), onLeave() and t()
// from app.js and i18n.js.
"use strict";

// A snapshot costs the box one key frame on its uplink (the fleet keeps each for
// `[cameras] snapshot_max_age`): a grid left open refreshes them this seldom.
const SNAPSHOT_EVERY_MS = 30000;
// The live view plays this close behind the newest frame; further behind (a hidden tab, a
// slow link) it jumps ahead, and it keeps only this much played video in memory.
const LIVE_EDGE_S = 3;
const KEEP_S = 20;
const RECONNECT_MS = 3000;

function cameraPath(device, camera) {
  return `/api/v1/cameras/${encodeURIComponent(device)}/${encodeURIComponent(camera)}`;
}

function liveHash(device, camera) {
  return "#/camera/" + encodeURIComponent(device) + "/" + encodeURIComponent(camera);
}

/** One camera's tile: its latest snapshot when it can stream, else why not, in words. */
function cameraTile(c, stamp) {
  const streams = c.state === "ok" && c.tunnel;
  const tile = h("a", { class: "tile", href: liveHash(c.device, c.camera), "data-camera": c.device + "/" + c.camera, "data-state": c.state });
  const why = h("div", { class: "no-picture" }, c.state !== "ok"
    ? t("camera." + c.state) + (c.error ? " (" + c.error + ")" : "") : t("cam.no_tunnel"));
  let picture = why;
  if (streams) {
    picture = h("img", { src: cameraPath(c.device, c.camera) + "/snapshot.jpg?t=" + stamp, alt: c.camera });
    picture.addEventListener("load", () => { tile.dataset.snapshot = picture.naturalWidth + "x" + picture.naturalHeight; });
    picture.addEventListener("error", () => { why.textContent = t("cam.snapshot_failed"); picture.replaceWith(why); });
  }
  tile.append(picture, h("span", { class: "caption" }, c.camera,
    c.video ? " · " + c.video : "", c.viewers ? " · " + t("cam.viewers", c.viewers) : ""));
  return tile;
}

/** Fills `into` with the cameras (of `device` only, when given), one section per box. */
function cameraGrid(into, device) {
  const gen = generation;
  every(SNAPSHOT_EVERY_MS, async () => {
    try {
      const list = await api("/api/v1/cameras" + (device ? "?device=" + encodeURIComponent(device) : ""));
      if (gen !== generation) return;
      const stamp = Math.floor(Date.now() / SNAPSHOT_EVERY_MS);
      const boxes = new Map();
      list.cameras.forEach((c) => boxes.set(c.device, [...(boxes.get(c.device) || []), c]));
      if (!boxes.size) {
        into.replaceChildren(h("p", { class: "muted", id: "no-cameras" }, t(device ? "cam.none_box" : "cam.none")));
        return;
      }
      into.replaceChildren(...[...boxes].map(([d, cams]) => h("section", { class: "site", "data-device": d },
        device ? null : h("h2", {}, h("a", { href: "#/device/" + encodeURIComponent(d) }, d)),
        h("div", { class: "tiles" }, cams.map((c) => cameraTile(c, stamp))))));
    } catch (e) { if (gen === generation) into.replaceChildren(errorLine(e) || ""); }
  });
}

function showCameras() {
  document.getElementById("logout").hidden = false;
  const grid = h("div", { id: "camera-grid" }, t("loading"));
  show(h("h1", {}, t("cam.page")), grid);
  cameraGrid(grid, null);
}

/**
 * Plays `url` (fragmented MP4 over HTTP) in `video` through Media Source Extensions,
 * reconnecting when the stream ends; `report(state, words)` tells the page what happens.
 * Returns a stop function.
 */
function livePlayer(video, url, report) {
  let stopped = false, ctl = null, objectUrl = null, retry = null;

  function again(words) {
    if (stopped) return;
    report("reconnecting", words);
    retry = setTimeout(run, RECONNECT_MS);
  }

  async function run() {
    if (stopped) return;
    ctl = new AbortController();
    let resp;
    try {
      resp = await fetch(url, { credentials: "same-origin", signal: ctl.signal });
    } catch (e) { return again(t("cam.failed", e.message)); }
    if (resp.status === 401) { location.hash = "#/login"; return; }
    if (!resp.ok) {
      let words = resp.status + " " + resp.statusText;
      try { words = (await resp.json()).error || words; } catch (_) { /* not JSON */ }
      return again(t("cam.failed", words));
    }
    const type = resp.headers.get("content-type") || "";
    if (!window.MediaSource || !MediaSource.isTypeSupported(type)) {
      ctl.abort();
      report("unsupported", t("cam.unsupported", type.replace(/^.*codecs="?([^"]*)"?.*$/, "$1")));
      return;
    }
    const source = new MediaSource();
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(source);
    video.src = objectUrl;
    await new Promise((r) => source.addEventListener("sourceopen", r, { once: true }));
    const buffer = source.addSourceBuffer(type);
    const queue = [];
    const pump = () => {
      if (stopped || buffer.updating || source.readyState !== "open") return;
      if (queue.length) {
        try { buffer.appendBuffer(queue.shift()); } catch (e) { ctl.abort(); }
        return;
      }
      const b = buffer.buffered;
      if (!b.length) return;
      const start = b.start(0), end = b.end(b.length - 1);
      if (video.currentTime < start || end - video.currentTime > LIVE_EDGE_S) video.currentTime = Math.max(start, end - 0.5);
      else if (video.currentTime - start > KEEP_S * 1.5) buffer.remove(start, video.currentTime - KEEP_S);
    };
    buffer.addEventListener("updateend", pump);
    video.play().catch(() => { /* plays once data arrives */ });
    try {
      const reader = resp.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        queue.push(value);
        pump();
      }
      again(t("cam.ended"));
    } catch (e) {
      if (!stopped) again(t("cam.failed", e.message));
    }
  }

  video.addEventListener("playing", () => { if (!stopped) report("playing", t("cam.playing")); });
  report("connecting", t("cam.connecting"));
  run();
  return () => {
    stopped = true;
    clearTimeout(retry);
    if (ctl) ctl.abort();
    video.removeAttribute("src");
    video.load();
    if (objectUrl) URL.revokeObjectURL(objectUrl);
  };
}

function showCamera(device, camera) {
  document.getElementById("logout").hidden = false;
  const video = h("video", { id: "live", autoplay: true, playsinline: true, controls: true, "data-state": "connecting" });
  video.muted = true;
  const status = h("p", { id: "live-status", role: "status" });
  const rtsp = h("p", { id: "live-rtsp", class: "muted" });
  show(
    h("p", {}, h("a", { href: "#/cameras" }, t("cam.back")), " · ", h("a", { href: "#/device/" + encodeURIComponent(device) }, device)),
    h("h1", {}, device + " · " + camera),
    h("div", { class: "player" }, video),
    status,
    rtsp);
  const gen = generation;
  api("/api/v1/cameras?device=" + encodeURIComponent(device)).then((list) => {
    const c = list.cameras.find((x) => x.camera === camera);
    if (gen !== generation || !c || !list.rtsp_port) return;
    const url = `rtsp://${location.hostname}:${list.rtsp_port}${c.rtsp_path}`;
    rtsp.replaceChildren(t("cam.rtsp"), " ", h("code", {}, url));
  }).catch(() => { /* the player says what is wrong */ });
  const stop = livePlayer(video, cameraPath(device, camera) + "/live.mp4", (state, words) => {
    video.dataset.state = state;
    status.textContent = words;
    status.className = state === "playing" ? "" : state === "connecting" ? "muted" : "error";
  });
  onLeave(stop);
}
