"""``check_changes``: on a snapshot without errors, the errors Routes put make are those a
whole ``check_references`` finds, and anything else is left to the whole check."""

from __future__ import annotations

import pytest

from gossamer.model import ModelSnapshot, check_changes, check_references
from gossamer.types import Manifest, ResourceKey

from .builders import gateway, manifest, parse, route, service, snapshot, workload

SOURCE_IP = {"loadBalancer": {"algorithm": "ringHash", "hash": {"sourceIP": True}}}


def consistent() -> ModelSnapshot:
    snap = snapshot(
        service("a"),
        service("b"),
        service("c"),
        service("db", ("tcp", 5432, "tcp")),
        workload("w", "b", dependencies=[{"service": "c"}]),
        gateway("edge"),
        route("c", service="c", rules=[{"destinations": [{"service": "c"}]}]),
        route("in", gateways=["edge"], rules=[{"destinations": [{"service": "b"}]}]),
        manifest("TrafficPolicy", "p", {"service": "a", **SOURCE_IP}),
        manifest("ExternalService", "x", {"hosts": ["x.example"], "port": 443, "protocol": "tls"}),
    )
    assert check_references(snap) == []
    return snap


def ingress(to: str, name: str = "in", gateways: tuple[str, ...] = ("edge",)) -> Manifest:
    return route(name, gateways=list(gateways), rules=[{"destinations": [{"service": to}]}])


ROUTES: dict[str, Manifest] = {
    "a valid change": ingress("a"),
    "a new valid route": ingress("c", name="new"),
    "a missing service": ingress("z"),
    "a missing gateway": ingress("a", gateways=("side",)),
    "a tcp port": ingress("db"),
    "an external destination": ingress("x"),
    # w calls c through its sidecar; c's Route now sends to a, hashed by source IP
    "a policy it breaks": route("c", service="c", rules=[{"destinations": [{"service": "a"}]}]),
}


@pytest.mark.parametrize("what", ROUTES)
def test_routes_put_find_what_a_whole_check_finds(what: str) -> None:
    puts = parse(ROUTES[what])
    after = consistent().with_changes(puts)
    found = check_changes(after, puts, ())
    assert found is not None
    assert sorted(map(str, found)) == sorted(map(str, check_references(after)))
    assert (found == []) == ("valid" in what)


def test_anything_but_routes_put_is_left_to_the_whole_check() -> None:
    snap = consistent()
    puts = parse(workload("w2", "a"))
    assert check_changes(snap.with_changes(puts), puts, ()) is None
    gone = [ResourceKey("Route", "default", "in")]
    assert check_changes(snap.with_changes((), gone), (), gone) is None
    both = parse(ROUTES["a valid change"], service("d"))
    assert check_changes(snap.with_changes(both), both, ()) is None
