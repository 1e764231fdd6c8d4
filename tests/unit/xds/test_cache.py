"""The snapshot cache: a snapshot equal to the one a node has is not published again
(``Snapshot.same_content``)."""

from __future__ import annotations

import asyncio

from xds_fakes import resources

from gossamer.xds.cache import SnapshotCache
from gossamer.xds.serializer import Serializer
from gossamer.xds.snapshot import Snapshot


def test_equal_content_is_not_published_again() -> None:
    cache, event = SnapshotCache(), asyncio.Event()
    cache.watch("n", event)
    first = Snapshot.build(resources({"c1": 1}, {"c1": 1}, {"l1": 1}, {}), Serializer())
    assert cache.set("n", first) and event.is_set()
    event.clear()
    # built again from other objects (another serializer): the same digests, no push
    again = Snapshot.build(resources({"c1": 1}, {"c1": 1}, {"l1": 1}, {}), Serializer())
    assert again.digests == first.digests and again.resources is not first.resources
    assert not cache.set("n", again)
    assert cache.get("n") is first and not event.is_set()
    changed = Snapshot.build(resources({"c1": 1}, {"c1": 2}, {"l1": 1}, {}), Serializer())
    assert cache.set("n", changed) and cache.get("n") is changed and event.is_set()


def test_snapshots_without_digests_are_compared_resource_by_resource() -> None:
    cache = SnapshotCache()
    serializer = Serializer()
    one = Snapshot(Snapshot.build(resources({"c1": 1}, {}, {}, {}), serializer).resources)
    two = Snapshot(Snapshot.build(resources({"c1": 2}, {}, {}, {}), serializer).resources)
    assert one.digests is None and two.digests is None
    assert cache.set("n", one)
    assert not cache.set("n", Snapshot(one.resources))
    assert cache.set("n", two) and cache.get("n") is two
