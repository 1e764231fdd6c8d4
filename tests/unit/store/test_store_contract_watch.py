"""The Store contract for watches and history, run against every backend."""

from __future__ import annotations

import asyncio

import pytest
from store_helpers import DEADLINE, StoreMaker, drain, manifest, revisions, take, watchers

from gossamer.errors import ConflictError, ValidationError
from gossamer.store.base import Change, Store
from gossamer.types import ResourceKey


async def _write(store: Store, count: int) -> None:
    """``count`` transactions; transaction i puts item-i and, from i=2, deletes item-(i-2)."""
    start = await store.revision()
    for i in range(start, start + count):
        deletes = [ResourceKey("Item", "default", f"item-{i - 2}")] if i >= 2 else []
        assert await store.apply([manifest("Item", f"item-{i}", n=i)], deletes) == i + 1


def _check(batch: list[Change], revision: int) -> None:
    """The batch of transaction ``revision`` as written by ``_write``."""
    i = revision - 1
    put = batch[0]
    assert (put.type, put.key.name, put.revision) == ("put", f"item-{i}", revision)
    assert put.resource.manifest["spec"] == {"n": i}
    assert (put.resource.revision, put.resource.create_revision) == (revision, revision)
    if i >= 2:
        gone = batch[1]
        assert (gone.type, gone.key.name, gone.revision) == ("delete", f"item-{i - 2}", revision)
        # A delete carries the last stored value, with the revision that stored it.
        assert gone.resource.manifest["spec"] == {"n": i - 2}
        assert gone.resource.revision == gone.resource.create_revision == revision - 2
    assert len(batch) == (2 if i >= 2 else 1)


@pytest.mark.asyncio
async def test_watch_from_zero_replays_everything_then_follows(make_store: StoreMaker) -> None:
    store = await make_store()
    await _write(store, 5)
    watch = store.watch(0)
    batches = await take(watch, 5)
    assert revisions(batches) == [1, 2, 3, 4, 5]
    for revision, batch in enumerate(batches, 1):
        _check(batch, revision)
    await _write(store, 2)
    later = await take(watch, 2)
    assert revisions(later) == [6, 7]
    _check(later[1], 7)


@pytest.mark.asyncio
async def test_watch_from_the_middle(make_store: StoreMaker) -> None:
    store = await make_store()
    await _write(store, 6)
    assert revisions(await take(store.watch(4), 2)) == [5, 6]
    current = store.watch(6)
    await _write(store, 1)
    [batch] = await take(current, 1)
    _check(batch, 7)


@pytest.mark.asyncio
async def test_watch_waits_for_the_next_transaction(make_store: StoreMaker) -> None:
    store = await make_store()
    watch = store.watch(0)
    pending = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0)
    assert not pending.done()
    await store.apply([manifest("Service", "cart")])
    async with asyncio.timeout(DEADLINE):
        batch = await pending
    assert [(c.type, c.key.name, c.revision) for c in batch] == [("put", "cart", 1)]


@pytest.mark.asyncio
async def test_concurrent_watchers_each_see_every_transaction(make_store: StoreMaker) -> None:
    store = await make_store()
    await _write(store, 3)
    total = 30

    async def watcher(start: int) -> list[list[Change]]:
        return await take(store.watch(start), total - start)

    async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as tasks:
        watchers = [tasks.create_task(watcher(start)) for start in (0, 0, 2, 3)]
        tasks.create_task(_write(store, total - 3))
    for start, task in zip((0, 0, 2, 3), watchers, strict=True):
        batches = task.result()
        assert revisions(batches) == list(range(start + 1, total + 1))
        for revision, batch in enumerate(batches, start + 1):
            _check(batch, revision)


@pytest.mark.asyncio
async def test_a_slow_watcher_misses_nothing(make_store: StoreMaker) -> None:
    store = await make_store()
    slow = store.watch(0)
    first = await asyncio.gather(_write(store, 1), take(slow, 1))
    assert revisions(first[1]) == [1]
    # Far more transactions than one read of the log returns, while nobody reads.
    await _write(store, 300)
    batches = await take(slow, 300)
    assert revisions(batches) == list(range(2, 302))
    for revision, batch in enumerate(batches, 2):
        _check(batch, revision)


@pytest.mark.asyncio
async def test_close_ends_every_watch(make_store: StoreMaker) -> None:
    store = await make_store()
    await _write(store, 2)
    async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as tasks:
        caught_up = tasks.create_task(drain(store.watch(2)))
        behind = store.watch(0)
        [batch] = await take(behind, 1)
        _check(batch, 1)
        while watchers(store) < 2:  # noqa: ASYNC110 - poll until both watches run
            await asyncio.sleep(0)
        await store.close()
    assert caught_up.result() == []
    # A watch that still had changes to deliver also ends once the store is closed.
    assert await drain(behind) == []


@pytest.mark.asyncio
async def test_compacted_history_raises_conflict(make_store: StoreMaker) -> None:
    store = await make_store(history=3)
    await _write(store, 10)
    # Revisions 8..10 are kept: a watch must start at 7 or later.
    for start in (0, 1, 6):
        with pytest.raises(ConflictError, match="list again"):
            store.watch(start)
    batches = await take(store.watch(7), 3)
    assert revisions(batches) == [8, 9, 10]
    _check(batches[0], 8)


@pytest.mark.asyncio
async def test_a_watcher_overtaken_by_compaction_gets_conflict(make_store: StoreMaker) -> None:
    store = await make_store(history=4)
    watch = store.watch(0)
    await _write(store, 10)
    with pytest.raises(ConflictError):
        await take(watch, 1)


@pytest.mark.asyncio
async def test_watch_start_must_be_a_revision_of_this_store(make_store: StoreMaker) -> None:
    store = await make_store()
    await _write(store, 2)
    with pytest.raises(ConflictError, match="only at revision 2"):
        store.watch(3)
    with pytest.raises(ValidationError, match="from_revision"):
        store.watch(-1)
