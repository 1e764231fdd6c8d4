"""What only the SQLite backend does: persistence, file ownership, error mapping."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from store_helpers import manifest, revisions, take

from gossamer.errors import ConfigError, StoreError
from gossamer.store.base import StoreStatistics
from gossamer.store.sqlite import SQLiteStore
from gossamer.types import ResourceKey

CART = ResourceKey("Service", "default", "cart")


@pytest.mark.asyncio
async def test_reopen_keeps_resources_revisions_and_history(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with await SQLiteStore.open(path) as store:
        await store.apply([manifest("Service", "cart", port=80)])
        await store.apply([manifest("Service", "cart", port=81), manifest("Service", "shop")])
        await store.apply(deletes=[ResourceKey("Service", "default", "shop")])
    async with await SQLiteStore.open(str(path)) as store:
        assert await store.revision() == 3
        cart = await store.get(CART)
        assert cart is not None
        assert (cart.manifest["spec"], cart.revision, cart.create_revision) == ({"port": 81}, 2, 1)
        assert (await store.list())[1] == 3
        batches = await take(store.watch(0), 3)
        assert revisions(batches) == [1, 2, 3]
        assert [(c.type, c.key.name) for c in batches[2]] == [("delete", "shop")]
        assert await store.apply([manifest("Service", "new")]) == 4


@pytest.mark.asyncio
async def test_compaction_is_remembered_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with await SQLiteStore.open(path, history=2) as store:
        for i in range(5):
            await store.apply([manifest("Item", f"i{i}")])
        stats = store.statistics()
        assert (stats.revision, stats.compact_revision, stats.log_entries) == (5, 3, 2)
    async with await SQLiteStore.open(path, history=2) as store:
        assert store.statistics().compact_revision == 3
        assert revisions(await take(store.watch(3), 2)) == [4, 5]


@pytest.mark.asyncio
async def test_statistics(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with await SQLiteStore.open(path, history=50) as store:
        await store.apply([manifest("Service", "a"), manifest("Service", "b")])
        await store.apply([manifest("Service", "a", x=1)], [ResourceKey("Service", "default", "b")])
        watch = store.watch(0)
        await take(watch, 1)
        assert store.statistics() == StoreStatistics(
            backend="sqlite",
            path=str(path),
            revision=2,
            resources=1,
            log_entries=4,
            compact_revision=0,
            history=50,
            watchers=1,
        )
    async with await SQLiteStore.open(path, history=50) as store:
        assert store.statistics().resources == 1
        assert store.statistics().log_entries == 4


@pytest.mark.asyncio
async def test_one_owner_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with await SQLiteStore.open(path) as store:
        await store.apply([manifest("Service", "cart")])
        with pytest.raises(StoreError, match="another process has this store open"):
            await SQLiteStore.open(path, lock_timeout=0.05)
    async with await SQLiteStore.open(path) as store:  # released on close
        assert await store.revision() == 1


@pytest.mark.asyncio
async def test_missing_directory_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "store.db"
    with pytest.raises(StoreError) as info:
        await SQLiteStore.open(path)
    message = str(info.value)
    assert str(path) in message
    assert "check the directory exists and is writable" in message


@pytest.mark.asyncio
async def test_foreign_files_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database at all, just some words " * 20)
    with pytest.raises(StoreError, match="not a Gossamer store"):
        await SQLiteStore.open(text)

    other = tmp_path / "other.db"
    await asyncio.to_thread(_make_foreign_db, other)
    with pytest.raises(StoreError, match="another program"):
        await SQLiteStore.open(other)
    # Refusing changed nothing in the file.
    assert await asyncio.to_thread(_tables, other) == ["t"]


def _make_foreign_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()


def _tables(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    finally:
        conn.close()


@pytest.mark.asyncio
async def test_bad_history_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="history"):
        await SQLiteStore.open(tmp_path / "store.db", history=0)


def _add_failing_trigger(path: Path) -> None:
    """Make SQLite abort any transaction that writes a resource named 'boom'."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON resources WHEN NEW.name = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
    conn.close()


@pytest.mark.asyncio
async def test_a_failure_inside_the_transaction_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with await SQLiteStore.open(path) as store:
        await store.apply([manifest("Service", "cart", port=1)])
    await asyncio.to_thread(_add_failing_trigger, path)

    async with await SQLiteStore.open(path) as store:
        watch = store.watch(1)
        # 'a' and the update of 'cart' are written before 'boom' fails.
        with pytest.raises(StoreError, match=r"injected failure.*nothing was applied"):
            await store.apply(
                [
                    manifest("Service", "a"),
                    manifest("Service", "cart", port=2),
                    manifest("Service", "boom"),
                ]
            )
        assert await store.revision() == 1
        assert await store.get(ResourceKey("Service", "default", "a")) is None
        cart = await store.get(CART)
        assert cart is not None and cart.manifest["spec"] == {"port": 1}
        assert store.statistics().log_entries == 1
        # The store goes on working; watchers never saw the failed transaction.
        assert await store.apply([manifest("Service", "a")]) == 2
        [batch] = await take(watch, 1)
        assert [(c.key.name, c.revision) for c in batch] == [("a", 2)]

    async with await SQLiteStore.open(path) as store:
        assert await store.revision() == 2
        assert [r.key.name for r in (await store.list())[0]] == ["a", "cart"]


@pytest.mark.asyncio
async def test_cancelled_apply_still_wakes_watchers(tmp_path: Path) -> None:
    async with await SQLiteStore.open(tmp_path / "store.db") as store:
        watch = store.watch(0)
        apply = asyncio.ensure_future(store.apply([manifest("Service", "cart")]))
        await asyncio.sleep(0)  # the job is now queued or running in the store's thread
        apply.cancel()
        # Whether or not it committed, the store and its watchers agree.
        with pytest.raises(asyncio.CancelledError):
            await apply
        await store.apply([manifest("Service", "shop")])
        revision = await store.revision()
        batches = await take(watch, revision)
        assert revisions(batches) == list(range(1, revision + 1))
        assert [r.key.name for r in (await store.list())[0]][-1] == "shop"
