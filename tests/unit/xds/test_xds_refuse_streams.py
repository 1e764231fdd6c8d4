"""``XdsServer.refuse_streams`` ends open ADS streams with UNAVAILABLE and its reason and
refuses new ones; ``accept_streams`` serves them again (a real server and gRPC client on
loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from prometheus_client import CollectorRegistry

from gossamer.controlplane.plane import ControlPlane
from gossamer.model import parse_manifest
from gossamer.polling import wait_until
from gossamer.store.memory import MemoryStore
from gossamer.testing.mesh import service, workload
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.server import XdsServer

NODE = "sidecar~default~web-1"
REASON = "the store (etcd at etcd://127.0.0.1:1/gossamer) is unreachable: go elsewhere"


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[ControlPlane, XdsServer]]:
    store = MemoryStore()
    cache = SnapshotCache()
    monitor = XdsMonitor(CollectorRegistry())
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


async def _open(channel: grpc.aio.Channel) -> grpc.aio.StreamStreamCall:
    """An ADS stream as web-1 that asks for its clusters and stays open."""
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    request = discovery_pb2.DiscoveryRequest(
        node=base_pb2.Node(id=NODE, cluster="web"), type_url=ResourceType.CLUSTER.url
    )
    call: grpc.aio.StreamStreamCall = stub.StreamAggregatedResources()
    await call.write(request)
    return call


async def _ended(call: grpc.aio.StreamStreamCall) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        for _ in range(100):  # bounded: a stream sends few responses here
            if await call.read() is grpc.aio.EOF:
                break
    return ended.value


async def _refused(channel: grpc.aio.Channel) -> grpc.aio.AioRpcError:
    """A new stream's end. The server may end it before the client's first request is
    written, so the write itself can raise the status."""
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        call = await _open(channel)
        for _ in range(100):
            if await call.read() is grpc.aio.EOF:
                break
    return ended.value


@pytest.mark.asyncio
async def test_open_streams_end_and_new_ones_are_refused_until_accepted(
    served: tuple[ControlPlane, XdsServer],
) -> None:
    plane, server = served
    async with (
        asyncio.timeout(60),
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel,
        asyncio.TaskGroup() as tg,
    ):
        publishing = tg.create_task(plane.run())
        call = await _open(channel)
        first = await call.read()  # served: the proxy's clusters
        assert first.type_url == ResourceType.CLUSTER.url
        server.refuse_streams(REASON)
        ended = await _ended(call)
        assert ended.code() == grpc.StatusCode.UNAVAILABLE
        assert ended.details() == REASON
        assert server.refusing == REASON
        await wait_until(lambda: not server.cache.connected(), timeout=10, what="stream gone")
        # a new stream while refusing: UNAVAILABLE at once
        refused = await _refused(channel)
        assert (refused.code(), refused.details()) == (grpc.StatusCode.UNAVAILABLE, REASON)
        assert server.streams_closed == 2
        # accepted again: served
        server.accept_streams()
        again = await _open(channel)
        assert (await again.read()).type_url == ResourceType.CLUSTER.url
        again.cancel()
        publishing.cancel()
