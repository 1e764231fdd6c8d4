// Numbers as the map, panels and tables show them.

export function rps(x) {
  if (x === null || x === undefined) return "–";
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

export function percent(share) {
  const p = (share || 0) * 100;
  return p === 0 ? "0%" : p < 0.1 ? "<0.1%" : p >= 10 ? `${p.toFixed(0)}%` : `${p.toFixed(1)}%`;
}

export function ms(x) {
  if (x === null || x === undefined) return "–";
  return x >= 100 ? `${x.toFixed(0)} ms` : x >= 10 ? `${x.toFixed(1)} ms` : `${x.toFixed(2)} ms`;
}

/** Node health from the error rate of the requests into it. */
export function health(figures) {
  if (!figures || !figures.requests) return "idle";
  if (figures.errorRate >= 0.05) return "bad";
  if (figures.errorRate >= 0.01) return "warn";
  return "ok";
}

/** An element with text; children appended. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** ``30s``, ``5m``, ``1h``, ``7d`` -> seconds. */
export function windowSeconds(since) {
  const m = /^(\d+)([smhd])$/.exec(since);
  return m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]] : 300;
}
