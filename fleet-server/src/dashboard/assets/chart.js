// Sensor charts drawn as inline SVG: no chart library (the command centre may have no
// internet). One chart per series: the band from each minute's lowest to highest reading,
// the line through each minute's average, and a dot per minute when there are few.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

/**
 * A chart of one series from GET /api/v1/devices/{d}/series: `series` is
 * {sensor, metric, unit, points: [{minute_ms, n, min, max, avg}]}; `since`/`until` the
 * window (ms); `limit` an alert threshold to draw, if any.
 */
function drawChart(series, since, until, limit) {
  const W = 640, H = 240, L = 56, R = 12, T = 12, B = 28;
  const pts = series.points;
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`, class: "chart-svg", role: "img",
    "data-series": `${series.sensor}/${series.metric}`, "data-points": pts.length,
  });
  const title = `${series.sensor} · ${series.metric} (${series.unit})`;
  root.append(svg("title", {}, title));
  let lo = Infinity, hi = -Infinity;
  for (const p of pts) { lo = Math.min(lo, p.min); hi = Math.max(hi, p.max); }
  if (limit !== undefined && limit !== null) { lo = Math.min(lo, limit); hi = Math.max(hi, limit); }
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const x = (ms) => L + (W - L - R) * (ms - since) / Math.max(1, until - since);
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  // Axes and labels: four values up the side, five times along the bottom (site zone).
  root.append(svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
  root.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
  for (let i = 0; i <= 3; i++) {
    const v = lo + (hi - lo) * i / 3;
    root.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, fmtNum(v, 1)));
  }
  for (let i = 0; i <= 4; i++) {
    const ms = since + (until - since) * i / 4;
    root.append(svg("text", { x: x(ms), y: H - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, fmtClock(ms)));
  }
  if (limit !== undefined && limit !== null) {
    const line = svg("line", { x1: L, x2: W - R, y1: y(limit), y2: y(limit), class: "limit" });
    line.append(svg("title", {}, `${t("chart.limit")} ${fmtNum(limit)} ${series.unit}`));
    root.append(line);
  }
  // A point is drawn at the middle of its minute.
  const mid = (p) => x(p.minute_ms + 30000);
  if (pts.length > 0) {
    // The band, split where minutes are missing (a gap of more than 5 minutes shows as a gap).
    const runs = [];
    let run = [];
    for (const p of pts) {
      if (run.length && p.minute_ms - run[run.length - 1].minute_ms > 5 * 60000) { runs.push(run); run = []; }
      run.push(p);
    }
    runs.push(run);
    for (const r of runs) {
      const top = r.map((p) => `${mid(p).toFixed(1)},${y(p.max).toFixed(1)}`);
      const bottom = r.slice().reverse().map((p) => `${mid(p).toFixed(1)},${y(p.min).toFixed(1)}`);
      root.append(svg("polygon", { points: top.concat(bottom).join(" "), class: "band" }));
      root.append(svg("polyline", { points: r.map((p) => `${mid(p).toFixed(1)},${y(p.avg).toFixed(1)}`).join(" "), class: "avg" }));
    }
    // Dots with their figures (a tooltip) when they fit.
    if (pts.length <= 180) {
      for (const p of pts) {
        const dot = svg("circle", {
          cx: mid(p).toFixed(1), cy: y(p.avg).toFixed(1), r: 2.6, class: "pt",
          "data-minute-ms": p.minute_ms, "data-n": p.n, "data-min": p.min, "data-max": p.max, "data-avg": p.avg,
        });
        dot.append(svg("title", {}, `${fmtTime(p.minute_ms, false)}: ${t("chart.avg")} ${fmtNum(p.avg)} ${series.unit}, ` +
          `${t("chart.min")} ${fmtNum(p.min)}, ${t("chart.max")} ${fmtNum(p.max)} (${t("chart.n", p.n)})`));
        root.append(dot);
      }
    }
  }
  return root;
}
