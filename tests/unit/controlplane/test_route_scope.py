"""Route-only publishes rebuild only the proxies a changed Route reaches
(``controlplane.route_scope``); every proxy's snapshot must still equal a full rebuild."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from tests.unit.controlplane.test_incremental import (
    PROXIES,
    SERVICES,
    assert_full_rebuilds,
    base,
    published,
    rebuilt_by,
    worker,
)

from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.route_scope import route_change
from gossamer.model import parse_manifest
from gossamer.store.memory import MemoryStore
from gossamer.types import API_VERSION, ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor

#: a second gateway, so that a Route naming one gateway is seen to leave the other alone
SIDE_GATEWAY = {
    "apiVersion": API_VERSION,
    "kind": "Gateway",
    "metadata": {"name": "side"},
    "spec": {"port": 18081},
}
ALL = [*PROXIES, ProxyIdentity("gateway", "default", "side")]
CLIENT, SIDECAR_A, EDGE, SIDE = (p.node_id for p in ALL)  # client depends on a and b


def _route(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "Route", "metadata": {"name": name}, "spec": spec}


def _destinations(service: str, subset: str | None, weight: int) -> list[dict[str, Any]]:
    if subset is None:
        return [{"service": service}]
    other = "v2" if subset == "v1" else "v1"
    return [
        {"service": service, "subset": {"version": subset}, "weight": weight},
        {"service": service, "subset": {"version": other}, "weight": 100 - weight},
    ]


def east_west(service: str, to: str, subset: str | None, weight: int, mirror: bool) -> Any:
    rule: dict[str, Any] = {"destinations": _destinations(to, subset, weight)}
    if mirror:
        rule["mirror"] = {"service": "c", "subset": {"version": "v2"}}
    return _route(f"{service}-ew", {"service": service, "rules": [rule]})


def ingress(
    name: str,
    to: str,
    subset: str | None,
    weight: int,
    timeout: int,
    gateways: tuple[str, ...] = ("edge",),
) -> Any:
    rule = {
        "matches": [{"path": {"prefix": f"/{name}"}}],
        "destinations": _destinations(to, subset, weight),
        "timeout": f"{timeout}s",
    }
    return _route(name, {"gateways": list(gateways), "rules": [rule]})


services = st.sampled_from(SERVICES)
subsets = st.sampled_from([None, "v1", "v2"])
weights = st.integers(1, 99)
ops = st.one_of(
    st.tuples(st.just("east-west"), services, services, subsets, weights, st.booleans()),
    st.tuples(
        st.just("ingress"),
        st.sampled_from(["edge", "extra"]),
        services,
        subsets,
        weights,
        st.sampled_from([("edge",), ("side",), ("edge", "side")]),
    ),
    st.tuples(st.just("delete"), st.sampled_from(["a-ew", "b-ew", "c-ew", "edge", "extra"])),
    st.tuples(st.just("workload"), services, st.integers(0, 3), st.sampled_from(["v1", "v2"])),
)


async def scenario(steps: list[tuple[Any, ...]]) -> list[set[str]]:
    """Apply ``steps``, publishing after each; check every proxy against a full rebuild and
    return, per step, the proxies its publish translated."""
    store = MemoryStore()
    cache = SnapshotCache()
    plane = await published(store, cache, [SIDE_GATEWAY], ALL)
    built = rebuilt_by(plane)
    rounds: list[set[str]] = []
    for op in steps:
        if op[0] == "east-west":
            await plane.apply([parse_manifest(east_west(*op[1:]))])
        elif op[0] == "ingress":
            gateways = op[5] if len(op) > 5 else ("edge",)
            await plane.apply([parse_manifest(ingress(*op[1:5], 5, gateways))])
        elif op[0] == "delete":
            assert plane.model is not None
            key = parse_manifest(ingress(op[1], "a", None, 1, 1)).key  # (its name only)
            if key in plane.model.resources:
                await plane.delete([key])
        else:
            _, svc, i, version = op
            await plane.apply([parse_manifest(worker(svc, i, 1, "healthy", version))])
        built.clear()
        await plane.publish()
        rounds.append(set(built))
        assert_full_rebuilds(plane, cache, op, ALL)
    await store.close()
    return rounds


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=10))
def test_route_scoped_publishes_equal_full_rebuilds(steps: list[tuple[Any, ...]]) -> None:
    asyncio.run(scenario(steps))


def test_an_ingress_route_change_rebuilds_only_the_gateways_it_names() -> None:
    rounds = asyncio.run(
        scenario(
            [
                ("ingress", "edge", "c", None, 1, ("edge",)),
                ("ingress", "edge", "b", "v2", 40, ("edge",)),
                ("ingress", "extra", "a", None, 1, ("side",)),
            ]
        )
    )
    assert rounds[1:] == [{EDGE}, {SIDE}]


def test_an_east_west_route_change_rebuilds_only_the_callers_of_its_service() -> None:
    rounds = asyncio.run(
        scenario([("east-west", "b", "b", None, 1, False), ("east-west", "b", "b", "v2", 30, True)])
    )
    assert rounds == [{CLIENT}, {CLIENT}]  # the client depends on b; a-0 and the gateways not


def test_a_change_beside_the_routes_is_not_route_scoped() -> None:
    async def check() -> None:
        store = MemoryStore()
        plane = ControlPlane(store, SnapshotCache(), XdsMonitor(CollectorRegistry()))
        await plane.load()
        await plane.apply([parse_manifest(m) for m in base()])
        old = plane.model
        await plane.apply([parse_manifest(east_west("b", "b", "v1", 50, False))])
        routes_only = plane.model
        await plane.apply(
            [
                parse_manifest(east_west("b", "b", "v2", 50, False)),
                parse_manifest(worker("b", 0, 2, "healthy", "v2")),
            ]
        )
        assert old is not None and routes_only is not None and plane.model is not None
        scope = route_change(old, routes_only)
        assert scope is not None and scope.services == {("default", "b")}
        assert route_change(routes_only, plane.model) is None  # a Workload changed too
        assert route_change(routes_only, routes_only) is None  # nothing changed
        await store.close()

    asyncio.run(check())


def test_route_scoped_rounds_hold_one_copy_of_a_gateway_table() -> None:
    """Between full rounds (which prune), a gateway's replaced route table and its encoding
    are dropped at once: 20 ingress Route changes leave the caches as large as one."""

    async def check() -> tuple[list[int], list[int]]:
        store = MemoryStore()
        plane = await published(store, SnapshotCache())
        encodings, entries = [], []
        for timeout in range(1, 21):
            await plane.apply([parse_manifest(ingress("edge", "c", None, 1, timeout))])
            await plane.publish()
            encodings.append(len(plane.publisher.serializer))
            entries.append(len(plane.publisher.translator.memo))
        assert plane.publisher.incremental_rounds == 20  # (no full round meanwhile)
        await store.close()
        return encodings, entries

    encodings, entries = asyncio.run(check())
    assert encodings[-1] == encodings[1]
    assert entries[-1] - entries[1] <= 19  # the changed Route's own rules: one per change
