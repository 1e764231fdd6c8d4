// Trace lists (slowest and failed, from /v1/traces) and one trace's span waterfall
// (/v1/traces/{traceId}).

import * as api from "./api.js";
import { el, ms } from "./format.js";

/** ``{failed, slowest}`` summaries for a service (or an edge: traces through both). */
export async function tracesOf(since, service, peer) {
  const through = (t) => !peer || t.services.includes(peer);
  const [failed, recent] = await Promise.all([
    api.get("/v1/traces", { since, service, status: "5xx", limit: 50 }),
    api.get("/v1/traces", { since, service, limit: 200 }),
  ]);
  const slowest = recent.traces.filter(through)
    .sort((a, b) => b.durationMs - a.durationMs).slice(0, 8);
  return { failed: failed.traces.filter(through).slice(0, 8), slowest };
}

export function traceList(title, traces, open) {
  const list = el("ul", { class: "traces" });
  for (const t of traces) {
    const button = el("button", { type: "button", class: t.error ? "trace failed" : "trace",
      "data-trace": t.traceId },
    el("span", { class: "status" }, t.status || "–"),
    el("span", { class: "name" }, `${t.rootService} ${t.rootName}`),
    el("span", { class: "duration" }, ms(t.durationMs)));
    button.addEventListener("click", () => open(t.traceId));
    list.append(el("li", {}, button));
  }
  return el("section", {}, el("h3", {}, title),
    traces.length ? list : el("p", { class: "hint" },
      "none in this window (tracing is off until the Mesh's tracing.sampling is above 0)"));
}

/** The waterfall of one trace: a row per span, indented under its parent, its bar on the
 *  trace's time line (red when it failed). */
export function waterfall(trace, onSpan) {
  const total = Math.max(trace.durationMs, 0.001);
  const rows = el("div", { class: "waterfall" });
  for (const s of trace.spans) {
    const bar = el("div", { class: s.error || s.status >= 500 ? "bar failed" : "bar" });
    bar.style.left = `${(100 * s.startMs) / total}%`;
    bar.style.width = `${Math.max(0.3, (100 * s.durationMs) / total)}%`;
    const label = el("div", { class: "span-label" },
      el("span", { class: "service" }, s.service),
      el("span", { class: "kind" }, ` ${s.kind} `),
      el("span", { class: "status" }, s.status || ""));
    label.style.paddingLeft = `${s.depth * 14}px`;
    const row = el("div", { class: "span-row", "data-span": s.spanId }, label,
      el("div", { class: "track" }, bar), el("div", { class: "span-ms" }, ms(s.durationMs)));
    row.addEventListener("click", () => onSpan(s));
    rows.append(row);
  }
  return rows;
}
