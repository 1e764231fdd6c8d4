// The service map (Cytoscape): laid out by call depth, nodes coloured by health, edges
// labelled rps / error % / p99, with a lock badge when every request on them was mTLS.

import { health, ms, percent, rps } from "./format.js";
import { positions } from "./layout.js";

const COLOURS = { ok: "#2e9d58", warn: "#e0a100", bad: "#d64541", idle: "#9aa3ad" };

const STYLE = [
  {
    selector: "node.service, node.gateway, node.external, node.unknown",
    style: {
      label: "data(label)", "text-wrap": "wrap", "text-valign": "bottom", "text-margin-y": 6,
      "font-size": 12, color: "#1d2630", "background-color": (n) => COLOURS[n.data("health")],
      width: 34, height: 34, "border-width": 2, "border-color": "#ffffff",
    },
  },
  { selector: "node.gateway", style: { shape: "round-diamond", width: 42, height: 42 } },
  { selector: "node.external", style: { shape: "round-rectangle", "border-style": "dashed",
    "border-color": "#5b6770" } },
  { selector: "node.unknown", style: { shape: "round-triangle" } },
  { selector: "node.lock", style: {
    width: 14, height: 14, "background-opacity": 0, "background-image": "lock.svg",
    "background-fit": "contain", events: "no", label: "" } },
  {
    selector: "edge",
    style: {
      label: "data(label)", "font-size": 10, color: "#33404d", "text-rotation": "autorotate",
      "text-background-color": "#ffffff", "text-background-opacity": 0.85,
      "text-background-padding": 2, "curve-style": "bezier", "target-arrow-shape": "triangle",
      width: (e) => 1.5 + Math.min(5, Math.log10(1 + (e.data("rps") || 0)) * 2),
      "line-color": (e) => COLOURS[e.data("health")], "target-arrow-color":
        (e) => COLOURS[e.data("health")], "arrow-scale": 0.9,
    },
  },
  { selector: ":selected", style: { "overlay-color": "#3b82f6", "overlay-opacity": 0.25,
    "overlay-padding": 6 } },
  { selector: ".faded", style: { opacity: 0.12 } },
  { selector: "node.match", style: { "border-color": "#3b82f6", "border-width": 4 } },
];

export function edgeId(source, destination) {
  return `${source} -> ${destination}`;
}

function edgeLabel(e) {
  return `${rps(e.rps)} rps · ${percent(e.errorRate)} · p99 ${ms(e.latencyMs?.p99)}`;
}

/** A caller nobody calls (a gateway) is coloured by the requests it sent. */
function outgoing(id, edges) {
  const out = edges.filter((e) => e.source === id);
  const requests = out.reduce((sum, e) => sum + e.requests, 0);
  const errors = out.reduce((sum, e) => sum + e.errors, 0);
  return { requests, errorRate: requests ? errors / requests : 0 };
}

export class ServiceMap {
  constructor(container, { onSelect }) {
    this.cy = cytoscape({
      container, style: STYLE, elements: [], minZoom: 0.05, maxZoom: 3,
      wheelSensitivity: 0.3, boxSelectionEnabled: false, autoungrabify: true,
    });
    this.shape = "";
    this.cy.on("tap", "node.service, node.gateway, node.external, node.unknown", (ev) =>
      onSelect({ kind: "node", id: ev.target.id() }));
    this.cy.on("tap", "edge", (ev) => onSelect({
      kind: "edge", source: ev.target.data("source"), destination: ev.target.data("target"),
    }));
    this.cy.on("tap", (ev) => { if (ev.target === this.cy) onSelect(null); });
  }

  /** Shows one /v1/topology answer: laid out again only when nodes or edges changed. */
  update(topology) {
    const { nodes, edges } = topology;
    const shape = JSON.stringify([nodes.map((n) => n.id), edges.map((e) => edgeId(e.source,
      e.destination))]);
    const cy = this.cy;
    cy.batch(() => {
      if (shape !== this.shape) {
        cy.elements().remove();
        const at = positions(nodes, edges);
        cy.add(nodes.map((n) => ({ group: "nodes", data: { id: n.id }, classes: n.kind,
          position: at[n.id] })));
        cy.add(edges.filter((e) => at[e.source] && at[e.destination]).map((e) => ({
          group: "edges", data: { id: edgeId(e.source, e.destination), source: e.source,
            target: e.destination } })));
      }
      for (const n of nodes) {
        cy.getElementById(n.id).data({
          label: n.requests ? `${n.id}\n${rps(n.rps)} rps · ${percent(n.errorRate)}` : n.id,
          health: health(n.requests ? n : outgoing(n.id, edges)), figures: n,
        });
      }
      for (const e of edges) {
        cy.getElementById(edgeId(e.source, e.destination)).data({
          label: edgeLabel(e), health: health(e), rps: e.rps, figures: e,
          mtls: e.requests > 0 && e.mtls >= 1,
        });
      }
    });
    if (shape !== this.shape) {
      this.shape = shape;
      cy.fit(undefined, 40);
    }
    this.placeLocks();
  }

  /** A lock badge just above the label of each edge whose requests were all mTLS. */
  placeLocks() {
    const cy = this.cy;
    cy.batch(() => {
      cy.nodes(".lock").remove();
      cy.edges().filter((e) => e.data("mtls")).forEach((e) => {
        const mid = e.midpoint();
        cy.add({ group: "nodes", data: { id: `lock ${e.id()}` }, classes: "lock",
          position: { x: mid.x, y: mid.y - 16 }, selectable: false, grabbable: false });
      });
    });
  }

  select(selection) {
    this.cy.elements().unselect();
    if (!selection) return;
    const id = selection.kind === "node" ? selection.id
      : edgeId(selection.source, selection.destination);
    this.cy.getElementById(id).select();
  }

  /** Highlights the services whose name contains ``text`` (and their edges); the count. */
  search(text, zoom = false) {
    const cy = this.cy;
    const needle = text.trim().toLowerCase();
    const services = cy.nodes().not(".lock");
    cy.batch(() => {
      cy.elements().removeClass("faded match");
      if (!needle) return;
      const hits = services.filter((n) => n.id().toLowerCase().includes(needle));
      const near = hits.union(hits.connectedEdges());
      cy.elements().not(near).not(near.connectedNodes()).addClass("faded");
      hits.addClass("match");
    });
    const hits = services.filter(".match");
    if (zoom && hits.length) cy.fit(hits.closedNeighborhood(), 60);
    return needle ? { hits: hits.length, of: services.length } : null;
  }
}
