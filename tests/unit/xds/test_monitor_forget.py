"""Disconnected proxies nobody registered are forgotten after a grace period; registered
ones keep their status entry (R7: 6,001 entries were kept after a flood of fake node ids)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from prometheus_client import CollectorRegistry

from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import ConfigError
from gossamer.model import parse_manifest
from gossamer.polling import wait_until
from gossamer.store.memory import MemoryStore
from gossamer.testing.mesh import service, workload
from gossamer.types import ProxyIdentity
from gossamer.xds.cache import SnapshotCache, SnapshotCacheStatistics
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.server import XdsServer
from gossamer.xds.state import StreamState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _proxy(name: str, host: str | None = None) -> ProxyIdentity:
    return ProxyIdentity("sidecar", "default", name, host=host)


@pytest.mark.asyncio
async def test_unregistered_proxies_are_forgotten_after_the_grace_period() -> None:
    clock = Clock()
    monitor = XdsMonitor(CollectorRegistry(), forget_after=60, clock=clock)
    monitor.set_registered(lambda p: p.name == "known")
    for i, name in enumerate(["known", "fake-1", "fake-2"]):
        monitor.opened(f"s{i}", _proxy(name), StreamState(delta=False), "sotw", None)
        monitor.closed(f"s{i}")
    clock.now += 59
    assert [s.node_id for s in monitor.statuses()] == [
        "sidecar~default~fake-1",
        "sidecar~default~fake-2",
        "sidecar~default~known",
    ]
    clock.now += 1
    statuses = monitor.statuses()
    assert [(s.node_id, s.state) for s in statuses] == [("sidecar~default~known", "disconnected")]
    monitor.close()


@pytest.mark.asyncio
async def test_a_proxy_that_comes_back_is_not_forgotten() -> None:
    clock = Clock()
    monitor = XdsMonitor(CollectorRegistry(), forget_after=60, clock=clock)
    monitor.opened("s1", _proxy("web-1"), StreamState(delta=False), "sotw", None)
    monitor.closed("s1")
    clock.now += 30
    monitor.opened("s2", _proxy("web-1"), StreamState(delta=False), "sotw", None)
    clock.now += 1000
    assert [s.state for s in monitor.statuses()] == ["stale"]
    monitor.close()


@pytest.mark.asyncio
async def test_streams_opening_and_closing_are_told_per_host() -> None:
    monitor = XdsMonitor(CollectorRegistry())
    told: list[tuple[str, bool]] = []
    monitor.on_host_streams(lambda host, opened: told.append((host, opened)))
    monitor.opened("s1", _proxy("a", "vm-1"), StreamState(delta=False), "sotw", None)
    monitor.opened("s2", _proxy("b"), StreamState(delta=False), "sotw", None)  # no host
    monitor.closed("s1")
    monitor.closed("s2")
    monitor.closed("s1")  # already closed: nothing more
    assert told == [("vm-1", True), ("vm-1", False)]
    monitor.close()


def test_a_negative_grace_period_is_refused() -> None:
    with pytest.raises(ConfigError, match="--forget-proxies-after"):
        XdsMonitor(CollectorRegistry(), forget_after=-1)


# -- a flood of fake node ids through the real ADS server --------------------------------


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[ControlPlane, XdsServer]]:
    store = MemoryStore()
    cache = SnapshotCache()
    monitor = XdsMonitor(CollectorRegistry(), forget_after=2.0)
    plane = ControlPlane(store, cache, monitor)
    await plane.load()
    await plane.apply(
        [parse_manifest(m) for m in (service("web"), workload("web-1", "web", "127.0.0.2", 1, 2))]
    )
    server = XdsServer(cache, monitor)
    await server.start("127.0.0.1", 0)
    try:
        yield plane, server
    finally:
        await server.stop(0)
        monitor.close()
        await store.close()


async def _connect_once(channel: grpc.aio.Channel, node_id: str, monitor: XdsMonitor) -> None:
    """Open an ADS stream as ``node_id``, wait until the server saw it, and hang up (a node
    no Workload or Gateway names gets no response: issue 7 R1)."""
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    request = discovery_pb2.DiscoveryRequest(
        node=base_pb2.Node(id=node_id, cluster="web"), type_url=ResourceType.CLUSTER.url
    )
    call = stub.StreamAggregatedResources(iter([request]))
    reading = asyncio.ensure_future(call.read())  # drives the call
    await wait_until(
        lambda: any(s.node_id == node_id for s in monitor.statuses()),
        timeout=10,
        interval=0.002,
        what=f"the server seeing {node_id}'s stream",
    )
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
        await reading


FLOOD = 300


@pytest.mark.asyncio
async def test_a_flood_of_fake_node_ids_leaves_nothing_behind(
    served: tuple[ControlPlane, XdsServer],
) -> None:
    plane, server = served
    monitor, cache = plane.monitor, plane.cache
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        await _connect_once(channel, "sidecar~default~web-1", monitor)  # registered: kept
        for i in range(FLOOD):
            await _connect_once(channel, f"sidecar~default~fake-{i}", monitor)

    await wait_until(lambda: not cache.connected(), timeout=10, what="every stream closed")
    # the latest ones are still remembered, pending the grace period...
    assert len(monitor._gone) > 1
    assert "sidecar~default~web-1" in monitor._gone
    # ...then forgotten by the timer, with nobody asking (the registered one stays)
    await wait_until(
        lambda: list(monitor._gone) == ["sidecar~default~web-1"],
        timeout=10,
        what="the fake proxies forgotten",
    )
    assert [(s.node_id, s.state) for s in monitor.statuses()] == [
        ("sidecar~default~web-1", "disconnected")
    ]
    assert cache.statistics() == SnapshotCacheStatistics(nodes=0, snapshots=0, events=0)
    assert len(monitor._streams) == 0
