from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import manifest

from gossamer.errors import ConfigError
from gossamer.store.factory import open_store, sqlite_path
from gossamer.store.memory import MemoryStore
from gossamer.store.sqlite import SQLiteStore


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("memory:", None),
        ("memory://", None),
        ("MEMORY:", None),
        ("sqlite:///var/lib/gossamer/store.db", Path("/var/lib/gossamer/store.db")),
        ("sqlite:store.db", Path("store.db")),
        ("sqlite:data/store.db", Path("data/store.db")),
        ("/var/lib/gossamer/store.db", Path("/var/lib/gossamer/store.db")),
        ("./store.db", Path("store.db")),
        ("data/a:b.db", Path("data/a:b.db")),
        ("  store.db ", Path("store.db")),
    ],
)
def test_locations(location: str, expected: Path | None) -> None:
    assert sqlite_path(location) == expected


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("", "empty"),
        ("etcd://127.0.0.1:2379", "unknown scheme 'etcd'"),
        ("memory:/tmp/x", "takes no path"),
        ("sqlite://relative.db", "absolute path"),
        ("sqlite:", "names no file"),
    ],
)
def test_bad_locations(location: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sqlite_path(location)


@pytest.mark.asyncio
async def test_open_store(tmp_path: Path) -> None:
    memory = await open_store("memory:", history=5)
    assert isinstance(memory, MemoryStore)
    assert memory.statistics().revision == 0
    await memory.close()

    path = tmp_path / "store.db"
    for location in (f"sqlite://{path}", path, str(path)):
        store = await open_store(location, history=5)
        try:
            assert isinstance(store, SQLiteStore)
            assert store.statistics().history == 5
            assert store.path == path
            await store.apply([manifest("Service", f"s-{type(location).__name__}")])
        finally:
            await store.close()
