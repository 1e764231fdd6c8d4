"""``with_changes`` carries the views computed on the snapshot before into the one after
(when no resource they read changed, and workloads by service through a weight or health
change): every view must equal, in content and order, what a snapshot of the same
resources built from scratch computes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.model import ModelSnapshot, Resource
from gossamer.types import ResourceKey

from .builders import gateway, manifest, parse, route, service, workload

SERVICES = ("a", "b", "c")
NAMES = ("w1", "w2", "w3", "w4")


def base() -> ModelSnapshot:
    snap = ModelSnapshot()
    return snap.with_changes(
        parse(
            *(service(s) for s in SERVICES),
            *(workload(n, SERVICES[i % 3], f"127.0.0.{i + 2}") for i, n in enumerate(NAMES)),
            gateway("edge"),
            route("r-a"),
            route("in", gateways=["edge"]),
        )
    )


ops = st.one_of(
    # a workload put: new or replacing, of the same or another service, a weight
    st.tuples(
        st.just("workload"),
        st.sampled_from((*NAMES, "w5")),
        st.sampled_from(SERVICES),
        st.integers(1, 3),
    ),
    st.tuples(st.just("delete-workload"), st.sampled_from((*NAMES, "w5"))),
    st.tuples(st.just("service"), st.sampled_from((*SERVICES, "d"))),
    st.tuples(st.just("delete-service"), st.sampled_from((*SERVICES, "d"))),
    st.tuples(st.just("route"), st.sampled_from(("r-a", "r-b")), st.sampled_from(SERVICES)),
    # an ingress Route put: new or replacing, on the same gateways or others, a rule
    st.tuples(
        st.just("ingress"),
        st.sampled_from(("in", "in2")),
        st.sampled_from((("edge",), ("edge", "side"), ("side", "edge", "side"))),
        st.sampled_from(SERVICES),
    ),
    st.tuples(st.just("delete-route"), st.sampled_from(("r-a", "in", "in2"))),
    st.tuples(st.just("mesh"), st.integers(10, 90)),
    st.tuples(st.just("external"), st.sampled_from(("x", "y"))),
    # the same workload put twice in one apply: the last one wins
    st.tuples(st.just("twice"), st.sampled_from(NAMES), st.integers(1, 3)),
)


def change(snap: ModelSnapshot, op: tuple[Any, ...]) -> ModelSnapshot:
    puts: list[Resource] = []
    deletes: list[ResourceKey] = []
    match op:
        case ("workload", name, svc, weight):
            puts = parse(workload(name, svc, "127.0.1.9", weight=weight))
        case ("delete-workload", name):
            deletes = [ResourceKey("Workload", "default", name)]
        case ("service", name):
            puts = parse(service(name, ("http", 8080 + len(snap.services), "http")))
        case ("delete-service", name):
            deletes = [ResourceKey("Service", "default", name)]
        case ("route", name, svc):
            puts = parse(route(name, service=svc, rules=[{"destinations": [{"service": svc}]}]))
        case ("ingress", name, gateways, svc):
            rules = [{"destinations": [{"service": svc}]}]
            puts = parse(route(name, gateways=list(gateways), rules=rules))
        case ("delete-route", name):
            deletes = [ResourceKey("Route", "default", name)]
        case ("mesh", debounce):
            puts = parse(manifest("Mesh", "default", {"debounceMs": debounce}))
        case ("external", name):
            puts = parse(
                manifest(
                    "ExternalService",
                    name,
                    {"hosts": [f"{name}.example"], "port": 443, "protocol": "tcp"},
                )
            )
        case ("twice", name, weight):
            svc = (
                snap.workloads[("default", name)].spec.service
                if ("default", name) in snap.workloads
                else "a"
            )
            puts = parse(
                workload(name, svc, "127.0.1.7", weight=weight),
                workload(name, svc, "127.0.1.8", weight=weight + 1),
            )
    return snap.with_changes(puts, deletes)


def views(snap: ModelSnapshot) -> dict[str, Any]:
    """Every view, as ordered lists (the order is what translation iterates)."""
    refs = sorted(
        {*snap.services, *((ns, w.spec.service) for (ns, _), w in snap.workloads.items())}
    )
    return {
        "services": list(snap.services.items()),
        "workloads": list(snap.workloads.items()),
        "gateways": list(snap.gateways.items()),
        "routes": list(snap.routes.items()),
        "external_services": list(snap.external_services.items()),
        "mesh": snap.mesh,
        "workloads_of": [(ref, snap.workloads_of(ref)) for ref in refs],
        "routes_for_service": [(ref, snap.routes_for_service(ref)) for ref in refs],
        "routes_for_gateway": [
            (g, snap.routes_for_gateway(g)) for g in (*snap.gateways, ("default", "side"))
        ],
        "traffic_policies": [(ref, snap.traffic_policies_of(ref)) for ref in refs],
        "address_seed": snap.address_seed,
        "local_addresses": list(snap.local_addresses.items()),
    }


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(ops, st.booleans()), min_size=1, max_size=10))
def test_carried_views_equal_views_built_from_scratch(steps: list[tuple[Any, bool]]) -> None:
    snap = base()
    for op, look in steps:
        if look:
            views(snap)  # computed on the snapshot before: carried if still right
        snap = change(snap, op)
        fresh = ModelSnapshot(snap.revision, dict(snap.resources), dict(snap.created))
        assert views(snap) == views(fresh), op
        # what the next apply reads without a walk over every resource
        assert snap._newest_created == fresh._newest_created, op
        assert snap._kinds == fresh._kinds, op


def test_a_weight_change_carries_what_it_does_not_touch() -> None:
    snap = base()
    views(snap)
    after = change(snap, ("workload", "w1", "a", 3))
    for name in ("services", "routes", "local_addresses", "_routes_by_service", "_kinds"):
        assert after.__dict__[name] is snap.__dict__[name], name
    assert after.workloads_of(("default", "a"))[0].spec.weight == 3


def test_a_rule_change_of_a_route_carries_routes_by_gateway_and_service() -> None:
    snap = base()
    views(snap)
    after = change(snap, ("ingress", "in", ("edge",), "b"))
    edge = ("default", "edge")
    assert "_routes_by_gateway" in after.__dict__  # carried, not computed when asked
    (carried,) = after.routes_for_gateway(edge)
    assert carried is after.routes[("default", "in")] is not snap.routes_for_gateway(edge)[0]
    after = change(snap, ("route", "r-a", "a"))
    assert "_routes_by_service" in after.__dict__
    assert after.routes_for_service(("default", "a")) == [after.routes[("default", "r-a")]]
    # bound elsewhere: computed afresh when asked
    moved = change(snap, ("ingress", "in", ("edge", "side"), "b"))
    assert "_routes_by_gateway" not in moved.__dict__
