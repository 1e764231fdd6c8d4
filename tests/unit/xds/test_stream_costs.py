"""What one stream event costs the xDS server: a stream opening or closing reads only its
own node's streams (a connect storm of N proxies was O(N^2)), stream events count metrics
without ``labels()`` look-ups, and each stream waits on one event of its own that a new
snapshot of its node sets (``SnapshotCache.watch``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gossamer.types import ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import StreamState
from gossamer.xds.typestate import Outgoing


def proxy(i: int) -> ProxyIdentity:
    return ProxyIdentity("sidecar", "default", f"w-{i}", service="s")


def test_opening_and_closing_a_stream_reads_only_its_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monitor = XdsMonitor(CollectorRegistry())
    told: list[frozenset[str]] = []
    monitor.on_sds_capable(told.append)
    for i in range(50):
        monitor.opened(f"s{i}", proxy(i), StreamState(delta=False), "sotw", None, sds=i % 2 == 0)

    def every_stream() -> Any:
        raise AssertionError("a stream event read every stream")

    monkeypatch.setattr(monitor, "_counted", every_stream)
    monitor.opened("s50", proxy(50), StreamState(delta=False), "sotw", None, sds=True)
    monitor.opened("s51", proxy(1), StreamState(delta=False), "sotw", None, sds=True)
    monitor.closed("s0")
    monitor.closed("s51")  # proxy 1's older stream (not SDS-capable) is its newest again
    expected = {proxy(i).node_id for i in range(2, 51, 2)}
    assert monitor.sds_capable() == expected
    assert told[-1] == expected
    monkeypatch.undo()
    # the same answer as reading every stream's newest one
    newest = {s.proxy.node_id: s.sds for s in monitor._counted()}
    assert monitor.sds_capable() == {n for n, sds in newest.items() if sds}


def test_an_authenticated_stream_decides_its_nodes_sds() -> None:
    monitor = XdsMonitor(CollectorRegistry())
    web = proxy(1)
    monitor.opened("anon", web, StreamState(delta=False), "sotw", None, sds=True)
    assert monitor.sds_capable() == {web.node_id}
    monitor.opened("mtls", web, StreamState(delta=False), "sotw", None, authenticated=True)
    assert monitor.sds_capable() == frozenset()
    monitor.closed("mtls")
    assert monitor.sds_capable() == {web.node_id}


def test_pushes_and_nacks_count_without_labels_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = CollectorRegistry()
    monitor = XdsMonitor(registry)
    monitor.opened("s1", proxy(1), StreamState(delta=False), "sotw", None)

    def no_labels(*args: object, **kwargs: object) -> object:
        raise AssertionError("labels() on a stream event")

    monkeypatch.setattr(monitor.metrics.pushes, "labels", no_labels)
    for _ in range(3):
        monitor.sent("s1", Outgoing(ResourceType.ENDPOINT, "1", "v", (), ()))
    value = registry.get_sample_value("gossamer_xds_pushes_total", {"type": "endpoints"})
    assert value == 3


@pytest.mark.asyncio
async def test_a_watching_stream_is_woken_by_its_nodes_snapshots_only() -> None:
    cache = SnapshotCache()
    mine, other = asyncio.Event(), asyncio.Event()
    cache.watch("n1", mine)
    cache.watch("n2", other)
    assert cache.statistics().events == 2
    cache.set("n1", Snapshot())
    assert mine.is_set() and not other.is_set()
    mine.clear()
    assert not cache.set("n1", Snapshot())  # the same content: nobody woken
    assert not mine.is_set()
    cache.unwatch("n1", mine)
    cache.unwatch("n1", mine)  # (twice: harmless)
    cache.set("n1", Snapshot(created=1.0).with_resources(ResourceType.ENDPOINT, {}, 1.0))
    assert not mine.is_set()
    assert cache.statistics().events == 1
    cache.unwatch("n2", other)
    assert cache.statistics().events == 0
