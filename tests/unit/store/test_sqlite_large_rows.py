"""A large resource in the SQLite store must not slow every later apply (issue 7 R3: after
one 50 MB resource, applying 2,000 services took 10.4 s instead of 0.2 s)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from store_helpers import manifest

from gossamer.store.sqlite import SQLiteStore
from gossamer.types import ResourceKey


async def seconds_to_apply_many(path: Path, big_bytes: int) -> float:
    async with await SQLiteStore.open(path) as store:
        if big_bytes:
            big = manifest("Service", "sbig")
            big["metadata"]["annotations"] = {"x": "a" * big_bytes}
            await store.apply([big])
        started = time.perf_counter()
        await store.apply([manifest("Service", f"s{i}") for i in range(1000)])
        return time.perf_counter() - started


@pytest.mark.asyncio
async def test_a_large_resource_does_not_slow_later_applies(tmp_path: Path) -> None:
    baseline = await seconds_to_apply_many(tmp_path / "small.db", 0)
    with_big = await seconds_to_apply_many(tmp_path / "big.db", 10_000_000)
    assert with_big < 5 * baseline + 0.5, f"{with_big:.2f} s, {baseline:.2f} s without it"


@pytest.mark.asyncio
async def test_a_version_1_store_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with await SQLiteStore.open(path) as store:
        await store.apply([manifest("Service", "cart")])
        await store.apply([manifest("Service", "web")])
    # make it what version 1 wrote: manifests in WITHOUT ROWID tables
    conn = sqlite3.connect(path, isolation_level=None)
    for table in ("resources", "changes"):
        (ddl,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        conn.execute(f"ALTER TABLE {table} RENAME TO old")
        conn.execute(ddl + " WITHOUT ROWID")
        conn.execute(f"INSERT INTO {table} SELECT * FROM old")
        conn.execute("DROP TABLE old")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    async with await SQLiteStore.open(path) as store:
        assert await store.revision() == 2
        assert (await store.get(ResourceKey("Service", "default", "web"))) is not None
        assert await store.apply([manifest("Service", "shop")]) == 3
    conn = sqlite3.connect(path)
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    tables = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table'").fetchall()
    conn.close()
    assert version == 2
    assert not [sql for (sql,) in tables if "manifest" in sql and "WITHOUT ROWID" in sql]
