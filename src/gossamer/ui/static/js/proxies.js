// Proxy status (/v1/proxies: state per proxy, Envoy's NACK reason per resource type) and
// push latency: the control plane's histogram gossamer_xds_sync_latency_seconds (/metrics;
// from a change seen to the proxy ACKing all of it, every type and proxy since the control
// plane started: the API has no per-proxy figure; per type: gossamer_xds_push_latency_seconds).

import * as api from "./api.js";
import { el } from "./format.js";

const HISTOGRAM = "gossamer_xds_sync_latency_seconds";

/** ``[[le, cumulative count], ...]`` of the histogram in Prometheus text. */
export function buckets(text) {
  const out = [];
  const pattern = new RegExp(`^${HISTOGRAM}_bucket\\{le="([^"]+)"\\} ([0-9.e+-]+)$`);
  for (const line of text.split("\n")) {
    const m = pattern.exec(line.trim());
    if (m) out.push([m[1] === "+Inf" ? Infinity : Number(m[1]), Number(m[2])]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/** The upper bound of the bucket holding quantile ``q`` (what a histogram can say). */
export function quantileBound(bs, q) {
  const total = bs.length ? bs[bs.length - 1][1] : 0;
  if (!total) return null;
  return bs.find(([, count]) => count >= q * total)[0];
}

function seconds(bound) {
  if (bound === null) return "–";
  if (bound === Infinity) return "> 10 s";
  return bound < 1 ? `≤ ${(bound * 1000).toFixed(bound < 0.01 ? 1 : 0)} ms` : `≤ ${bound} s`;
}

export async function showProxies(table, latencyLine) {
  const [proxies, metrics] = await Promise.all([
    api.get("/v1/proxies"), api.get("/metrics", {}, { text: true })]);
  const bs = buckets(metrics);
  const pushes = bs.length ? bs[bs.length - 1][1] : 0;
  latencyLine.textContent = pushes
    ? `Push latency over ${pushes} pushes since the control plane started: p50 ` +
      `${seconds(quantileBound(bs, 0.5))}, p99 ${seconds(quantileBound(bs, 0.99))}.`
    : "No push measured yet.";
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const p of proxies.items) {
    const nacks = p.types.filter((t) => t.lastNack)
      .map((t) => `${t.type} v${t.lastNack.version}: ${t.lastNack.message}`);
    const resources = p.types.map((t) => `${t.type} ${t.resources}`).join(", ");
    body.append(el("tr", { class: `state-${p.state}`, "data-proxy": p.nodeId },
      el("td", {}, `${p.namespace}/${p.name}`), el("td", {}, p.kind),
      el("td", {}, p.host || "–"), el("td", { class: "state" }, p.state),
      el("td", {}, resources), el("td", { class: "nack" }, nacks.join("\n") || "–")));
  }
}
