"""The local cluster's endpoint set (``TrafficPolicy.rateLimit`` with ``scope: service``)
reaches every sidecar of the service, and an instance's health change reaches the *other*
sidecars in an endpoint-only (incremental) round, as a full rebuild would have it."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.endpoint.v3 import endpoint_pb2
from prometheus_client import CollectorRegistry

from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.model import parse_manifest
from gossamer.store.memory import MemoryStore
from gossamer.testing.mesh import service, workload
from gossamer.translate.proxy import Translator
from gossamer.types import API_VERSION, Manifest, ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer
from gossamer.xds.snapshot import Snapshot

LOCAL = "local|default/reviews"
PROXIES = [ProxyIdentity("sidecar", "default", f"reviews-{i}", service="reviews") for i in (0, 1)]


def replica(i: int, health: str = "healthy") -> Manifest:
    return workload(f"reviews-{i}", "reviews", f"127.0.0.{i + 2}", 15000, 18000, health=health)


def policy(scope: str) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrafficPolicy",
        "metadata": {"name": "reviews"},
        "spec": {"service": "reviews", "rateLimit": {"requests": 20, "per": "1m", "scope": scope}},
    }


def members(snap: Snapshot) -> list[str]:
    cla = endpoint_pb2.ClusterLoadAssignment()
    assert snap.of(ResourceType.ENDPOINT)[LOCAL].resource.Unpack(cla)
    return [lb.endpoint.hostname for loc in cla.endpoints for lb in loc.lb_endpoints]


@pytest.mark.asyncio
async def test_a_health_change_reaches_the_other_sidecars_local_cluster() -> None:
    store = MemoryStore()
    cache = SnapshotCache()
    plane = ControlPlane(store, cache, XdsMonitor(CollectorRegistry()))
    await plane.load()
    base: list[dict[str, Any]] = [service("reviews", 9080), *(replica(i) for i in range(3))]
    await plane.apply([parse_manifest(m) for m in [*base, policy("service")]])
    for p in PROXIES:
        cache.attach(p)
    await plane.publish()

    def snap_of(p: ProxyIdentity) -> Snapshot:
        got = cache.get(p.node_id)
        assert got is not None
        return got

    assert [members(snap_of(p)) for p in PROXIES] == [["reviews-0", "reviews-1", "reviews-2"]] * 2
    rounds = plane.publisher.incremental_rounds
    await plane.apply([parse_manifest(replica(2, health="unhealthy"))])
    await plane.publish()
    assert plane.publisher.incremental_rounds == rounds + 1, "an endpoint-only round"
    assert [members(snap_of(p)) for p in PROXIES] == [["reviews-0", "reviews-1"]] * 2
    # ... as a full rebuild has it
    assert plane.model is not None
    translator, serializer = Translator(), Serializer()
    for p in PROXIES:
        expected = proxy_snapshot(translator.proxy(plane.model, p), serializer)
        got = snap_of(p).of(ResourceType.ENDPOINT)
        assert {n: v.version for n, v in got.items()} == {
            n: v.version for n, v in expected.of(ResourceType.ENDPOINT).items()
        }
    # Back to per instance: the set empties (a full round: the policy changed).
    await plane.apply([parse_manifest(policy("instance"))])
    await plane.publish()
    assert [members(snap_of(p)) for p in PROXIES] == [[], []]
    await store.close()
