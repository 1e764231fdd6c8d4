"""A store that existed is never silently replaced by an empty one (issue 7, R1), and its
files are readable by this user only, whatever the umask (R6)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import manifest

from gossamer.errors import StoreError
from gossamer.store.identity import marker_path
from gossamer.store.sqlite import SQLiteStore

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _create(path: Path) -> None:
    async with await SQLiteStore.open(path) as store:
        await store.apply([manifest("Service", "cart", port=80)])


async def test_a_new_store_records_its_identity_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "gossamer.db"
    await _create(path)
    marker = json.loads(marker_path(path).read_text())
    assert marker["file"] == "gossamer.db" and len(marker["storeId"]) == 16
    async with await SQLiteStore.open(path) as store:
        assert store.store_id == marker["storeId"]
        assert await store.revision() == 1


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
async def test_an_emptied_or_missing_store_is_refused_and_left_alone(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "gossamer.db"
    await _create(path)
    if damage == "truncated":
        path.write_bytes(b"")
    else:
        path.unlink()
    with pytest.raises(StoreError) as refused:
        await SQLiteStore.open(path)
    message = str(refused.value)
    assert str(path) in message and str(marker_path(path)) in message
    assert "restore" in message.lower() and "docs/store.md" in message
    assert ("empty (0 bytes)" if damage == "truncated" else "missing") in message
    # nothing was written: the operator can still restore over it
    assert _names(tmp_path) == sorted(
        ["gossamer.db.id"] + (["gossamer.db"] if damage == "truncated" else [])
    )
    if damage == "truncated":
        assert path.stat().st_size == 0


async def test_deleting_the_marker_starts_an_empty_store_knowingly(tmp_path: Path) -> None:
    path = tmp_path / "gossamer.db"
    await _create(path)
    old = json.loads(marker_path(path).read_text())["storeId"]
    path.write_bytes(b"")
    marker_path(path).unlink()
    async with await SQLiteStore.open(path) as store:
        assert await store.revision() == 0
        assert store.store_id != old
    assert json.loads(marker_path(path).read_text())["storeId"] != old


async def test_a_restored_backup_of_the_same_store_opens(tmp_path: Path) -> None:
    path = tmp_path / "gossamer.db"
    await _create(path)
    backup = tmp_path / "backup.db"
    shutil.copy(path, backup)
    path.write_bytes(b"")
    shutil.copy(backup, path)
    async with await SQLiteStore.open(path) as store:
        assert await store.revision() == 1


async def test_another_store_put_in_its_place_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gossamer.db"
    other = tmp_path / "other" / "gossamer.db"
    other.parent.mkdir()
    await _create(path)
    await _create(other)
    shutil.copy(other, path)
    with pytest.raises(StoreError, match="replaced") as refused:
        await SQLiteStore.open(path)
    assert str(marker_path(path)) in str(refused.value)


async def test_a_store_without_an_identity_gets_one(tmp_path: Path) -> None:
    """Stores made before identities existed (no meta row, no marker) are adopted."""
    path = tmp_path / "gossamer.db"
    await _create(path)
    marker_path(path).unlink()
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'store_id'")
    conn.close()
    async with await SQLiteStore.open(path) as store:
        assert await store.revision() == 1
        assert json.loads(marker_path(path).read_text())["storeId"] == store.store_id


async def test_a_damaged_marker_is_named(tmp_path: Path) -> None:
    path = tmp_path / "gossamer.db"
    await _create(path)
    marker_path(path).write_text("{not json")
    with pytest.raises(StoreError, match="damaged") as refused:
        await SQLiteStore.open(path)
    assert str(marker_path(path)) in str(refused.value)


async def test_store_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "gossamer.db"
    async with await SQLiteStore.open(path) as store:
        await store.apply([manifest("Service", "cart", port=80)])
        wal = path.with_name("gossamer.db-wal")
        assert wal.exists()
        assert {n: _mode(tmp_path / n) for n in _names(tmp_path)} == {
            "gossamer.db": 0o600,
            "gossamer.db-wal": 0o600,
            "gossamer.db.id": 0o600,
        }


async def test_an_existing_readable_store_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "gossamer.db"
    await _create(path)
    os.chmod(path, 0o644)
    os.chmod(marker_path(path), 0o644)
    async with await SQLiteStore.open(path):
        assert _mode(path) == 0o600
    assert _mode(marker_path(path)) == 0o600
