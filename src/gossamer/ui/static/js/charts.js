// Per-minute series of a node or an edge (/v1/series) as two uPlot charts: requests and
// errors per second, and latency p50 / p99.

import { el, windowSeconds } from "./format.js";

const WIDTH = 380;
const HEIGHT = 150;

function chart(title, points, series, values, range) {
  const box = el("figure", { class: "chart" }, el("figcaption", {}, title));
  const data = [points.map((p) => p.start), ...values.map((f) => points.map(f))];
  // eslint-disable-next-line no-undef
  new uPlot({
    width: WIDTH, height: HEIGHT, legend: { show: true },
    scales: { x: { time: true, range: () => range } },
    series: [{}, ...series.map((s) => ({ ...s, points: { show: true, size: 5 } }))],
    axes: [{}, { size: 50 }],
  }, data, box);
  return box;
}

/** Two charts of ``points`` (oldest first) over the window ``since`` ending now, or a
 *  line saying there is nothing to draw. */
export function seriesCharts(points, since) {
  if (!points.length) return el("p", { class: "hint" }, "No requests in this window.");
  const now = Date.now() / 1000;
  const range = [Math.min(points[0].start, now - windowSeconds(since)), now];
  return el("div", { class: "charts" },
    chart("requests / s", points, [
      { label: "rate", stroke: "#3b82f6", width: 1.5 },
      { label: "errors", stroke: "#d64541", width: 1.5 },
    ], [(p) => p.rps, (p) => p.errors / 60], range),
    chart("latency (ms)", points, [
      { label: "p50", stroke: "#2e9d58", width: 1.5 },
      { label: "p99", stroke: "#e07b00", width: 1.5 },
    ], [(p) => p.latencyMs.p50, (p) => p.latencyMs.p99], range),
  );
}
