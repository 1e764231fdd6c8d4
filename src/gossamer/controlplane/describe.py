"""``gossamer describe``: everything that shapes traffic to one service (or one Route's
rules), put together from the model, the control plane's own xDS state per proxy and the
counters the proxies' hosts read from their Envoys.

Pure: ``service_callers``/``route_callers`` say which proxies carry the config and where
their resources and counters are; the API gathers an ``Observed`` per proxy (its ACKs
from ``XdsMonitor.resource_acks``, its host's presence, its stats through the host's
long-poll); ``describe_service``/``describe_route`` assemble the answer as plain JSON data.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from gossamer.controlplane.describe_rules import policy_view, rules_of
from gossamer.envoy.flag_stats import Prefixes, flag_counts
from gossamer.envoy.response_flags import BY_CODE
from gossamer.errors import NotFoundError
from gossamer.model.route import Route
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.translate import names
from gossamer.types import ProxyIdentity, ProxyKind
from gossamer.xds.acks import ResourceAck
from gossamer.xds.resources import ResourceType
from gossamer.xds.status import ProxyStatus

#: what ``responseFlags`` counts, said once in every answer
FLAGS_NOTE = (
    "counted by the callers' Envoys since each started (their own stats, until the mesh "
    "keeps access logs); a counter counts events: a failure a retry then hid counts too"
)


@dataclass(frozen=True)
class Caller:
    """A proxy whose config carries the described service's (or Route's) traffic."""

    kind: ProxyKind
    namespace: str
    name: str
    host: str | None
    #: why it is here: the dependency or Route that makes it route there
    via: tuple[str, ...]
    route_tables: frozenset[str] = frozenset()
    listeners: frozenset[str] = frozenset()
    #: what the names of the clusters (and endpoint sets) it carries start with
    cluster_prefixes: tuple[str, ...] = ()
    stats: Prefixes = field(default_factory=Prefixes)

    @property
    def node_id(self) -> str:
        return ProxyIdentity(self.kind, self.namespace, self.name).node_id

    def selects(self, rtype: ResourceType, name: str) -> bool:
        """Whether resource ``name`` of ``rtype`` is part of what is described."""
        if rtype in (ResourceType.CLUSTER, ResourceType.ENDPOINT):
            return name.startswith(self.cluster_prefixes)
        if rtype is ResourceType.ROUTE:
            return name in self.route_tables
        return name in self.listeners


@dataclass(frozen=True)
class Observed:
    """What the control plane knows of one proxy now."""

    #: its status (None: it never connected, or was forgotten)
    status: ProxyStatus | None = None
    #: its resources against its newest snapshot (None: no open stream)
    acks: list[ResourceAck] | None = None
    #: its host's liveness (``active``/``unreachable``; None: no host registered)
    host_state: str | None = None
    #: its Envoy's counters, as its host read them (None: not read; see ``stats_error``)
    stats: Mapping[str, int] | None = None
    stats_error: str | None = None


def _http_ports(model: ModelSnapshot, ref: Ref) -> list[str]:
    svc = model.services.get(ref)
    return [p.name for p in svc.spec.ports if p.is_http] if svc else []


def _sends_to(route: Route, ref: Ref) -> bool:
    ns = route.metadata.namespace
    return any(
        (d.namespace or ns, d.service) == ref for rule in route.spec.rules for d in rule.targets()
    )


def routes_to(model: ModelSnapshot, ref: Ref) -> list[tuple[Route, str]]:
    """Every Route shaping calls to ``ref`` or sending traffic to it, with why."""
    out: list[tuple[Route, str]] = []
    for (ns, _), route in sorted(model.routes.items()):
        target = f"{ns}/{route.spec.service}" if route.spec.service else None
        if (ns, route.spec.service) == ref:
            out.append((route, f"rules for calls to {ref[0]}/{ref[1]}"))
        elif _sends_to(route, ref):
            by = target or "gateways " + ", ".join(f"{ns}/{g}" for g in route.spec.gateways)
            out.append((route, f"sends to {ref[0]}/{ref[1]} (rules for {by})"))
    return out


def _targets(route: Route) -> list[Ref]:
    ns = route.metadata.namespace
    refs = {(d.namespace or ns, d.service) for rule in route.spec.rules for d in rule.targets()}
    if route.spec.service:
        refs.add((ns, route.spec.service))
    return sorted(refs)


def _sidecar_callers(
    model: ModelSnapshot, called: Mapping[Ref, str], clusters: Iterable[Ref], shared: Ref | None
) -> list[Caller]:
    """Sidecars depending on a service of ``called`` (service -> why); they carry the
    clusters of ``clusters``; a listener is shared unless its service is ``shared``."""
    prefixes = tuple(names.outbound_prefix(c) for c in clusters)
    out: list[Caller] = []
    for (ns, name), w in sorted(model.workloads.items()):
        tables: set[str] = set()
        listeners: dict[str, bool] = {}
        http: dict[str, bool] = {}  # the listeners with an HTTP connection manager's stats
        via: list[str] = []
        for dep in w.spec.dependencies:
            ref = (dep.namespace or ns, dep.service)
            port = model.service_port(ref, dep.port)
            if ref not in called or port is None:
                continue
            address = dep.localAddress or model.local_addresses[ref]
            lname = names.outbound_listener(address, dep.localPort or port.port)
            listeners[lname] = ref != shared
            if port.is_http:
                tables.add(names.outbound_route(ref, port.name))
                http[lname] = ref != shared
            via.append(called[ref])
        if via:
            out.append(
                Caller(
                    "sidecar",
                    ns,
                    name,
                    w.spec.host,
                    tuple(via),
                    frozenset(tables),
                    frozenset(listeners),
                    prefixes,
                    Prefixes(
                        tuple(f"cluster.{p}" for p in prefixes),
                        {f"http.{ln}.": s for ln, s in sorted(http.items())},
                    ),
                )
            )
    return out


def _gateway_callers(
    model: ModelSnapshot, routes: Iterable[Route], clusters: Iterable[Ref]
) -> list[Caller]:
    prefixes = tuple(names.outbound_prefix(c) for c in clusters)
    found: dict[Ref, list[str]] = {}
    for route in routes:
        ns = route.metadata.namespace
        for g in route.spec.gateways:
            if (ns, g) in model.gateways:
                found.setdefault((ns, g), []).append(f"Route {ns}/{route.metadata.name}")
    out: list[Caller] = []
    for gw, via in sorted(found.items()):
        lname = names.gateway_listener(gw)
        out.append(
            Caller(
                "gateway",
                gw[0],
                gw[1],
                None,
                tuple(via),
                frozenset({names.gateway_route(gw)}),
                frozenset({lname, names.gateway_redirect_listener(gw)}),
                prefixes,
                Prefixes(tuple(f"cluster.{p}" for p in prefixes), {f"http.{lname}.": True}),
            )
        )
    return out


def service_callers(model: ModelSnapshot, ref: Ref) -> list[Caller]:
    """The proxies whose config sends traffic to ``ref``: sidecars depending on it or on
    a service whose Route sends to it, and gateways whose Routes send to it."""
    called = {ref: f"depends on {ref[0]}/{ref[1]}"}
    gateway_routes: list[Route] = []
    for route, _ in routes_to(model, ref):
        ns = route.metadata.namespace
        if route.spec.service and (ns, route.spec.service) != ref:
            called.setdefault(
                (ns, route.spec.service),
                f"depends on {ns}/{route.spec.service}, whose Route {ns}/"
                f"{route.metadata.name} sends to {ref[0]}/{ref[1]}",
            )
        elif route.spec.gateways:
            gateway_routes.append(route)
    sidecars = _sidecar_callers(model, called, [ref], shared=ref)
    return [*sidecars, *_gateway_callers(model, gateway_routes, [ref])]


def route_callers(model: ModelSnapshot, route: Route) -> list[Caller]:
    """The proxies that route ``route``'s rules: the sidecars depending on its service,
    or its gateways; they carry its route table and its targets' clusters."""
    ns = route.metadata.namespace
    targets = _targets(route)
    if route.spec.service:
        ref = (ns, route.spec.service)
        called = {ref: f"depends on {ref[0]}/{ref[1]}"}
        return _sidecar_callers(model, called, targets, shared=ref)
    return _gateway_callers(model, [route], targets)


# -- assembly -----------------------------------------------------------------------------


def _ack_state(seen: Observed) -> str:
    """``acked``, ``pending``, ``rejected``, ``disconnected`` or ``never connected``."""
    if seen.acks is None:
        return "disconnected" if seen.status is not None else "never connected"
    states = {a.state for a in seen.acks}
    if "rejected" in states:
        return "rejected"
    return "acked" if seen.acks and states == {"acked"} else "pending"


def _host(c: Caller, seen: Observed) -> str:
    host = c.host or (seen.status.host if seen.status else None)
    if host is None:
        return "no host registered"
    state = {"active": "online", "unreachable": "offline"}.get(seen.host_state or "", "unknown")
    return f"{host} ({state})"


def proxy_view(c: Caller, seen: Observed) -> dict[str, Any]:
    acks = seen.acks or []
    return {
        "nodeId": c.node_id,
        "kind": c.kind,
        "namespace": c.namespace,
        "name": c.name,
        "host": _host(c, seen),
        "via": list(c.via),
        "state": _ack_state(seen),
        "nacks": sorted({a.nack for a in acks if a.nack}),
        "resources": [{**asdict(a), "state": a.state} for a in acks],
    }


def flags_view(callers: Iterable[Caller], observed: Mapping[str, Observed]) -> dict[str, Any]:
    """The response flags the callers' counters show, summed over proxies, and the
    proxies whose counters could not be read (and why)."""
    totals: dict[str, dict[str, Any]] = {}
    unread: list[dict[str, str]] = []
    for c in callers:
        seen = observed.get(c.node_id, Observed())
        if seen.stats is None:
            unread.append({"nodeId": c.node_id, "error": seen.stats_error or "not asked"})
            continue
        for fc in flag_counts(seen.stats, c.stats):
            f = BY_CODE[fc.flag]
            entry = totals.setdefault(
                f.code,
                {
                    "flag": f.code,
                    "name": f.name,
                    "meaning": f.meaning,
                    "count": 0,
                    "shared": False,
                    "proxies": [],
                },
            )
            entry["count"] += fc.count
            entry["shared"] = entry["shared"] or fc.shared
            entry["proxies"].append(
                {"nodeId": c.node_id, "count": fc.count, "counters": fc.counters}
            )
    order = list(BY_CODE)
    flags = sorted(totals.values(), key=lambda e: order.index(e["flag"]))
    return {"note": FLAGS_NOTE, "flags": flags, "unread": unread}


def _workload_view(model: ModelSnapshot, ref: Ref, hosts: Mapping[str, str]) -> list[Any]:
    out = []
    for w in sorted(model.workloads_of(ref), key=lambda w: w.ref):
        host = w.spec.host
        out.append(
            {
                "name": w.metadata.name,
                "address": w.spec.address,
                "ports": [p.port for p in w.spec.ports],
                "zone": w.zone,
                "health": w.spec.health,
                "sidecar": w.spec.sidecar,
                "draining": w.spec.health == "draining",
                "host": f"{host} ({hosts.get(host, 'unknown')})" if host else None,
            }
        )
    return out


def describe_service(
    model: ModelSnapshot,
    ref: Ref,
    observed: Mapping[str, Observed],
    hosts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Everything about traffic to ``ref``, in the order ``gossamer describe`` prints it.
    ``hosts``: each host's liveness (``online``/``offline``)."""
    svc = model.services.get(ref)
    if svc is None:
        raise not_found(model, "Service", ref)
    callers = service_callers(model, ref)
    # (a Service that gains an authorization mode shows it here)
    authorization: Any = getattr(svc.spec, "authorization", None)
    return {
        "service": {
            "namespace": ref[0],
            "name": ref[1],
            "ports": [p.model_dump(mode="json") for p in svc.spec.ports],
            "localAddress": model.local_addresses.get(ref),
            "mtls": svc.mtls_mode(model.mesh.spec.mtls.mode),
            "authorization": (
                authorization.model_dump(mode="json")
                if hasattr(authorization, "model_dump")
                else authorization
            ),
        },
        "workloads": _workload_view(model, ref, hosts or {}),
        "routes": [
            {
                "namespace": r.metadata.namespace,
                "name": r.metadata.name,
                "why": why,
                "rules": rules_of(r),
            }
            for r, why in routes_to(model, ref)
        ],
        "policies": [policy_view(p) for p in model.traffic_policies_of(ref)],
        "proxies": [proxy_view(c, observed.get(c.node_id, Observed())) for c in callers],
        "responseFlags": flags_view(callers, observed),
    }


def describe_route(
    model: ModelSnapshot, ref: Ref, observed: Mapping[str, Observed]
) -> dict[str, Any]:
    """A Route's rules (as ``describe_service`` shows them) and the proxies routing them."""
    route = model.routes.get(ref)
    if route is None:
        raise not_found(model, "Route", ref)
    callers = route_callers(model, route)
    ns = ref[0]
    return {
        "route": {
            "namespace": ns,
            "name": ref[1],
            "service": route.spec.service,
            "gateways": list(route.spec.gateways),
            "hosts": list(route.spec.hosts),
        },
        "rules": rules_of(route),
        "proxies": [proxy_view(c, observed.get(c.node_id, Observed())) for c in callers],
    }


def not_found(model: ModelSnapshot, kind: str, ref: Ref) -> NotFoundError:
    """``kind`` ``ref`` does not exist, naming those that do nearby: close names in its
    namespace, the same name in other namespaces."""
    existing = model.services if kind == "Service" else model.routes
    same_ns = sorted(n for ns, n in existing if ns == ref[0])
    close = difflib.get_close_matches(ref[1], same_ns, n=3, cutoff=0.6)
    elsewhere = sorted(f"{ns}/{n}" for ns, n in existing if n == ref[1] and ns != ref[0])
    hints = []
    if close:
        hints.append(f"did you mean {', '.join(close)}?")
    if elsewhere:
        hints.append(f"in other namespaces: {', '.join(elsewhere)} (use -n)")
    if not hints:
        listed = ", ".join(same_ns[:20]) + (", ..." if len(same_ns) > 20 else "")
        hints.append(
            f"{kind}s in {ref[0]}: {listed}" if same_ns else f"namespace {ref[0]} has no {kind}s"
        )
    return NotFoundError(f"{kind} {ref[0]}/{ref[1]} does not exist; {' '.join(hints)}")
