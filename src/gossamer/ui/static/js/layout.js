// Columns by call depth: gateways and other callers nobody calls on the left, each callee
// one column right of its deepest caller; rows ordered by their callers' rows (fewer
// crossings). Cycles are cut where they are met, so every node gets one column.

export const COLUMN = 380;
export const ROW = 110;

export function depths(nodes, edges) {
  const preds = new Map(nodes.map((n) => [n.id, []]));
  const succs = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) {
    if (e.source === e.destination) continue;
    preds.get(e.destination)?.push(e.source);
    succs.get(e.source)?.push(e.destination);
  }
  const depth = new Map();
  const waiting = new Map(nodes.map((n) => [n.id, preds.get(n.id).length]));
  const byKind = (a, b) =>
    (a.kind === "gateway" ? 0 : 1) - (b.kind === "gateway" ? 0 : 1) || a.id.localeCompare(b.id);
  const order = [...nodes].sort(byKind).map((n) => n.id);
  const settle = (id) => {
    const known = preds.get(id).filter((p) => depth.has(p)).map((p) => depth.get(p) + 1);
    depth.set(id, Math.max(0, ...known));
    const queue = [id];
    while (queue.length) {
      const u = queue.shift();
      for (const v of succs.get(u)) {
        if (depth.has(v)) continue;
        waiting.set(v, waiting.get(v) - 1);
        if (waiting.get(v) === 0) {
          depth.set(v, Math.max(...preds.get(v).map((p) => depth.get(p) + 1)));
          queue.push(v);
        }
      }
    }
  };
  for (const id of order) if (waiting.get(id) === 0 && !depth.has(id)) settle(id);
  // what is left sits on cycles: the node with most callers placed settles the rest
  for (let left = order.filter((id) => !depth.has(id)); left.length;
       left = left.filter((id) => !depth.has(id))) {
    left.sort((a, b) => waiting.get(a) - waiting.get(b) || a.localeCompare(b));
    settle(left[0]);
  }
  return depth;
}

/** {id: {x, y}} for every node. */
export function positions(nodes, edges) {
  const depth = depths(nodes, edges);
  const columns = [];
  for (const n of nodes) (columns[depth.get(n.id)] ||= []).push(n.id);
  const preds = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) preds.get(e.destination)?.push(e.source);
  const row = new Map();
  const out = {};
  columns.forEach((ids, c) => {
    const centre = (id) => {
      const rows = preds.get(id).filter((p) => row.has(p)).map((p) => row.get(p));
      return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : Infinity;
    };
    ids.sort((a, b) => centre(a) - centre(b) || a.localeCompare(b));
    ids.forEach((id, r) => {
      const y = r - (ids.length - 1) / 2;
      row.set(id, y);
      out[id] = { x: c * COLUMN, y: y * ROW };
    });
  });
  return out;
}
