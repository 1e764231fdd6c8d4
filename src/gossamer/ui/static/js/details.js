// The side panel: a selected service's or edge's figures, its charts and its traces.

import * as api from "./api.js";
import { seriesCharts } from "./charts.js";
import { el, ms, percent, rps } from "./format.js";
import { traceList, tracesOf } from "./traces.js";

function figures(f) {
  const rows = [
    ["requests", f.requests], ["rps", rps(f.rps)], ["errors", f.errors],
    ["4xx", f.errors4xx], ["5xx", f.errors5xx], ["error rate", percent(f.errorRate)],
    ["p50", ms(f.latencyMs?.p50)], ["p90", ms(f.latencyMs?.p90)],
    ["p99", ms(f.latencyMs?.p99)], ["mTLS", percent(f.mtls)], ["retries", f.retries],
  ];
  const dl = el("dl", { class: "figures" });
  for (const [name, value] of rows) {
    dl.append(el("dt", {}, name), el("dd", { "data-field": name }, value ?? "–"));
  }
  return dl;
}

/** Fills ``panel`` for ``selection`` (``{kind: "node", id}`` or ``{kind: "edge", source,
 *  destination}``) with the figures ``found`` in the topology over ``since``. */
export async function showDetails(panel, selection, found, since, view, openTrace) {
  const edge = selection.kind === "edge";
  const title = edge ? `${selection.source} → ${selection.destination}` : selection.id;
  const what = edge ? `edge (${found?.view || "–"} view)`
    : `${found?.kind || ""} · requests into it (${view} view)`;
  const params = edge ? { since, view, source: selection.source,
    destination: selection.destination } : { since, view, destination: selection.id };
  const service = edge ? selection.destination : selection.id;
  const [series, traces] = await Promise.all([
    api.get("/v1/series", params),
    tracesOf(since, service, edge ? selection.source : null),
  ]);
  panel.replaceChildren(
    el("h2", { "data-selected": title }, title),
    el("p", { class: "hint" }, `${what}, last ${since}`),
    found ? figures(found) : el("p", { class: "hint" }, "No requests in this window."),
    seriesCharts(series.points || [], since),
    traceList("Failed traces", traces.failed, openTrace),
    traceList("Slowest traces", traces.slowest, openTrace),
  );
}
