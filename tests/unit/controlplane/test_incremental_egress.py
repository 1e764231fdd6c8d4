"""A workload's dependencies on ExternalServices decide who their egress gateway lets
through (``translate.egress_callers``): a Workload change adding or dropping such a caller
is an endpoint change everywhere else, but the gateway is rebuilt. It was only patched, so
its caller check kept refusing a workload registered after its last full rebuild (a
flaky integration test, ``tests/integration/traffic/test_egress_gateway_mtls.py``, found
it: the refusal held for good)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gossamer.controlplane.incremental import endpoint_change
from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.store.memory import MemoryStore
from gossamer.testing.mesh import service, workload
from gossamer.translate.proxy import Translator
from gossamer.types import API_VERSION, ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer

GATEWAY = ProxyIdentity("gateway", "default", "egress")
OTHER = ProxyIdentity("gateway", "default", "edge")


def manifest(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def base() -> list[dict[str, Any]]:
    return [
        manifest("Mesh", "default", {"mtls": {"mode": "strict"}}),
        service("web"),
        service("api"),
        manifest("Gateway", "egress", {"address": "127.0.0.5", "port": 18000}),
        manifest("Gateway", "edge", {"address": "127.0.0.6", "port": 18001}),
        manifest(
            "ExternalService",
            "ledger",
            {
                "addresses": ["127.0.0.4"],
                "port": 5432,
                "protocol": "tcp",
                "via": {"gateway": "egress", "port": 18002},
            },
        ),
        workload("api-1", "api", "127.0.0.3", 15000, 8000),
    ]


def caller(name: str, deps: list[str], *, weight: int = 1) -> dict[str, Any]:
    return workload(
        name,
        "web",
        "127.0.0.2",
        15000 + len(name),
        8000,
        dependencies=[{"service": d} for d in deps],
        weight=weight,
    )


def model_of(*more: dict[str, Any]) -> ModelSnapshot:
    return ModelSnapshot().with_changes([parse_manifest(m) for m in [*base(), *more]])


@pytest.mark.parametrize(
    ("before", "after", "rebuilt"),
    [
        ((), (caller("web-1", ["ledger"]),), {("default", "egress")}),  # a new caller
        ((caller("web-1", ["ledger"]),), (caller("web-1", []),), {("default", "egress")}),
        (
            (caller("web-1", ["api"]),),
            (caller("web-1", ["api", "ledger"]),),
            {("default", "egress")},
        ),
        # its weight only, or a workload calling no external service: nothing to rebuild
        ((caller("web-1", ["ledger"]),), (caller("web-1", ["ledger"], weight=3),), set()),
        ((), (caller("web-1", ["api"]),), set()),
    ],
)
def test_a_change_of_an_external_services_callers_rebuilds_its_gateway(
    before: tuple[dict[str, Any], ...], after: tuple[dict[str, Any], ...], rebuilt: set[Any]
) -> None:
    old = model_of(*before)
    new = old.with_changes([parse_manifest(m) for m in after])
    change = endpoint_change(old, new)
    assert change is not None  # (still an endpoint change for every other proxy)
    assert change.gateways == rebuilt


@pytest.mark.asyncio
async def test_the_gateway_lets_a_caller_registered_later_through() -> None:
    store, cache = MemoryStore(), SnapshotCache()
    plane = ControlPlane(store, cache, XdsMonitor(CollectorRegistry()))
    await plane.load()
    await plane.apply([parse_manifest(m) for m in base()])
    for proxy in (GATEWAY, OTHER):
        cache.attach(proxy)
    plane.mtls.set_capable(frozenset({GATEWAY.node_id}))  # (its Envoy gets SDS: mTLS)
    await plane.publish()
    await plane.apply([parse_manifest(caller("web-1", ["ledger"]))])
    await plane.publish()
    assert plane.publisher.incremental_rounds == 1  # (the endpoint path, not a full round)
    assert plane.model is not None
    tls = plane.publisher.published_tls
    for proxy in (GATEWAY, OTHER):
        held = cache.get(proxy.node_id)
        fresh = proxy_snapshot(Translator().proxy(plane.model, proxy, tls), Serializer())
        assert held is not None and held.of(ResourceType.LISTENER) == fresh.of(
            ResourceType.LISTENER
        ), proxy.node_id
    await store.close()
