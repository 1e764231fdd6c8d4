"""``AdsStream.stop`` ends a stream at its next wake, never in the middle of a write: a
stream cancelled while gRPC still held its send could not be sent the status that ends
it (one CI run's client waited 60 s for it). ``XdsServer.refuse_streams`` stops a stream
that is writing and cancels the others at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from prometheus_client import CollectorRegistry

from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer
from gossamer.xds.server import STOP_GRACE, XdsServer
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.stream import AdsStream

NODE = "sidecar~default~web-1"

pytestmark = pytest.mark.asyncio


async def test_a_stream_stopped_while_writing_finishes_the_write_then_ends() -> None:
    cache = SnapshotCache()
    monitor = XdsMonitor(CollectorRegistry())
    requests: asyncio.Queue[Any] = asyncio.Queue()
    release, started = asyncio.Event(), asyncio.Event()
    writes: list[str] = []

    async def write(response: Any) -> None:
        writes.append("started")
        started.set()
        await release.wait()  # (gRPC holding the send: the client reads slowly)
        writes.append("done")

    stream = AdsStream(
        "s1", delta=False, cache=cache, monitor=monitor, read=requests.get, write=write
    )
    snap = Snapshot.build(
        {ResourceType.CLUSTER: {"c1": cluster_pb2.Cluster(name="c1")}}, Serializer()
    )
    cache.set(NODE, snap)
    await requests.put(
        discovery_pb2.DiscoveryRequest(
            node=base_pb2.Node(id=NODE, cluster="web"), type_url=ResourceType.CLUSTER.url
        )
    )
    running = asyncio.create_task(stream.run())
    async with asyncio.timeout(10):
        await started.wait()
        assert stream.writing
        stream.stop()
        for _ in range(20):  # (the loop runs every ready task many times over)
            await asyncio.sleep(0)
        assert not running.done(), "it ended in the middle of the write"
        release.set()
        await running  # ends on its own, without being cancelled
    assert writes == ["started", "done"]
    assert stream.stopped and not stream.writing


class _Stream:
    def __init__(self, writing: bool) -> None:
        self.writing = writing
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


async def test_refuse_streams_stops_a_writing_stream_and_cancels_the_others() -> None:
    server = XdsServer(SnapshotCache(), XdsMonitor(CollectorRegistry()))
    loop = asyncio.get_running_loop()
    writing, idle = _Stream(writing=True), _Stream(writing=False)
    # (two streams' scopes, as ``_serve`` holds them: only their deadlines are read)
    async with asyncio.timeout(None) as first, asyncio.timeout(None) as second:  # noqa: ASYNC100
        server._gate.streams = {first: writing, second: idle}  # type: ignore[dict-item]
        now = loop.time()
        server.refuse_streams("the store is unreachable")
        assert writing.stopped and not idle.stopped
        grace, at_once = first.when(), second.when()
        assert grace is not None and grace >= now + STOP_GRACE
        assert at_once is not None and at_once <= loop.time()
        first.reschedule(None)  # (the test's own scopes: let them end without expiring)
        second.reschedule(None)
    assert server.refusing == "the store is unreachable"
