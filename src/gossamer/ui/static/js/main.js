// The page: token, window and refresh, the map, the panel, the trace view, proxies.

import * as api from "./api.js";
import { showDetails } from "./details.js";
import { ServiceMap } from "./map.js";
import { showProxies } from "./proxies.js";
import { waterfall } from "./traces.js";
import { ms } from "./format.js";

const $ = (id) => document.getElementById(id);
const state = {
  since: "5m", reporter: "merged", selection: null, topology: null, view: "map", timer: null,
};

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

function login(message = "") {
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").focus();
}

async function guarded(work) {
  try {
    await work();
    return true;
  } catch (e) {
    if (e instanceof api.Unauthorized) login(e.message);
    else status(e.message, true);
    return false;
  }
}

function found(selection) {
  if (!selection || !state.topology) return null;
  if (selection.kind === "node") return state.topology.nodes.find((n) => n.id === selection.id);
  return state.topology.edges.find((e) => e.source === selection.source
    && e.destination === selection.destination);
}

async function refreshDetails() {
  if (!state.selection) {
    $("details").replaceChildren(Object.assign(document.createElement("p"), {
      className: "hint", textContent: "Click a service or an edge for its figures, charts " +
        "and traces." }));
    return;
  }
  await showDetails($("details"), state.selection, found(state.selection), state.since,
    state.reporter, openTrace);
}

async function refresh() {
  if (!api.hasToken()) return;
  const ok = await guarded(async () => {
    if (state.view === "proxies") {
      await showProxies($("proxies"), $("push-latency"));
    } else {
      state.topology = await api.get("/v1/topology", { since: state.since, view: state.reporter });
      map.update(state.topology);
      map.select(state.selection);
      applySearch(false);
      await refreshDetails();
    }
  });
  if (ok) status(`updated ${new Date().toLocaleTimeString()}`);
}

function schedule() {
  clearInterval(state.timer);
  const every = Number($("refresh").value);
  state.timer = every ? setInterval(refresh, every * 1000) : null;
}

function applySearch(zoom) {
  const counted = map.search($("search").value, zoom);
  $("search-count").textContent = counted ? `${counted.hits} of ${counted.of}` : "";
}

async function openTrace(traceId) {
  await guarded(async () => {
    const trace = await api.get(`/v1/traces/${encodeURIComponent(traceId)}`);
    $("trace-title").textContent =
      `trace ${trace.traceId} · ${ms(trace.durationMs)} · ${trace.spans.length} spans`;
    $("span-detail").textContent = "";
    $("waterfall").replaceChildren(waterfall(trace, (span) => {
      $("span-detail").textContent = JSON.stringify(span, null, 2);
    }));
    $("trace").hidden = false;
  });
}

function showView(view) {
  state.view = view;
  $("map-view").hidden = view !== "map";
  $("proxies-view").hidden = view !== "proxies";
  $("show-map").classList.toggle("active", view === "map");
  $("show-proxies").classList.toggle("active", view === "proxies");
  if (view === "map") map.cy.resize();
  refresh();
}

const map = new ServiceMap($("map"), {
  onSelect: (selection) => {
    state.selection = selection;
    map.select(selection);
    guarded(refreshDetails);
  },
});
window.gossamerMap = map.cy; // for the console and the browser tests (docs/ui.md)

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  api.setToken($("token").value);
  $("token").value = "";
  $("login").hidden = true;
  refresh();
});
$("window").addEventListener("change", () => { state.since = $("window").value; refresh(); });
$("view").addEventListener("change", () => { state.reporter = $("view").value; refresh(); });
$("refresh").addEventListener("change", schedule);
$("search").addEventListener("input", () => applySearch(false));
$("search").addEventListener("keydown", (ev) => { if (ev.key === "Enter") applySearch(true); });
$("show-map").addEventListener("click", () => showView("map"));
$("show-proxies").addEventListener("click", () => showView("proxies"));
$("trace-close").addEventListener("click", () => { $("trace").hidden = true; });
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") $("trace").hidden = true; });

state.since = $("window").value;
state.reporter = $("view").value;
schedule();
if (api.tokenFromFragment()) refresh();
else login();
