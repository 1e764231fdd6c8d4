"""What a publish round builds is frozen out of the collector's walks, and the collector
does not run during a round: a full collection at 1,000 proxies held the event loop
55-60 ms in the middle of an endpoint change's push (``bench/xds_scale.py``'s p99), and
young collections 1-7 ms each. Cyclic garbage frozen meanwhile is still collected, at
the next large prune or after ``COLLECT_EVERY``."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from test_prune_rounds import reviews_1
from test_tls_readiness import mesh_plane

from gossamer.controlplane.frozen_heap import COLLECT_EVERY, FREEZE_FROM, FrozenHeap


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    """Freezing is process-wide: each test starts and ends with nothing frozen and the
    collector on."""
    gc.unfreeze()
    assert gc.isenabled()
    yield
    gc.unfreeze()
    gc.enable()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def frozen_holding(obj: Any) -> bool:
    """Is ``obj`` out of the collector's generations (frozen)?"""
    return not any(o is obj for g in range(3) for o in gc.get_objects(g))


def test_off_by_default_it_freezes_and_pauses_nothing() -> None:
    heap = FrozenHeap()
    box: list[object] = [object()]
    heap.built()
    heap.pruned(FREEZE_FROM)
    with heap.paused():
        assert gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert heap.collections == 0
    assert not frozen_holding(box)


def test_a_round_freezes_what_it_built_and_a_large_prune_collects_first() -> None:
    clock = Clock()
    heap = FrozenHeap(clock)
    heap.enabled = True
    box: list[object] = [object()]
    heap.built()
    assert frozen_holding(box)
    assert heap.collections == 0, "a round freezes; it does not collect"
    # a cycle that became garbage while frozen is collected by the next large prune
    probe = _Finalized()
    probe.me = probe  # (a cycle: only the collector frees it)
    heap.built()
    del probe
    heap.pruned(FREEZE_FROM - 1)  # a small mesh's prune: no full collection
    assert heap.collections == 0 and not _Finalized.freed
    heap.pruned(FREEZE_FROM)
    assert heap.collections == 1 and _Finalized.freed
    assert frozen_holding(box), "what is alive is frozen again after the collection"


def test_no_round_goes_longer_than_collect_every_without_a_full_collection() -> None:
    clock = Clock()
    heap = FrozenHeap(clock)
    heap.enabled = True
    heap.built()
    clock.now += COLLECT_EVERY - 1
    heap.built()
    assert heap.collections == 0
    clock.now += 1
    heap.built()
    assert heap.collections == 1
    heap.built()
    assert heap.collections == 1


def test_the_collector_is_paused_during_a_round_and_nesting_keeps_the_outer_setting() -> None:
    heap, other = FrozenHeap(), FrozenHeap()
    heap.enabled = other.enabled = True
    with heap.paused():
        assert not gc.isenabled()
        with other.paused():
            assert not gc.isenabled()
        assert not gc.isenabled(), "an inner pause must not turn the collector back on"
    assert gc.isenabled()
    with pytest.raises(RuntimeError), heap.paused():
        raise RuntimeError("a round that fails")
    assert gc.isenabled()


@pytest.mark.asyncio
async def test_a_publish_round_runs_no_collection_and_ends_frozen() -> None:
    plane = await mesh_plane("off")
    plane.publisher.heap.enabled = True
    cache = plane.publisher.cache
    await plane.publish()
    thresholds = gc.get_threshold()
    gc.set_threshold(1, 1, 1)  # (any allocation would collect, but for the pause)
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        await plane.apply([reviews_1(3)])  # type: ignore[list-item]
        seen_during: list[int] = []
        real_round = plane.publisher._round

        async def watched(*args: Any) -> Any:
            collections.clear()
            try:
                return await real_round(*args)
            finally:
                seen_during.extend(collections)

        plane.publisher._round = watched  # type: ignore[method-assign]
        changed = await plane.publish()
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*thresholds)
    assert changed, "the change was published"
    assert seen_during == [], "the collector ran during the round"
    snap = cache.get(changed[0][0])
    assert snap is not None and frozen_holding(snap), "what the round built is frozen"


class _Finalized:
    freed = False
    me: object = None

    def __del__(self) -> None:
        _Finalized.freed = True
