"""A store's identity, so a store that existed is never silently replaced by an empty one.

A new SQLite store gets a random id, kept in its ``meta`` table and in a small marker file
beside it (``gossamer.db.id``). The marker outlives what happens to the store file: if the
file is later found missing, empty (0 bytes, a full disk or a bad restore) or holding another
store's id, opening refuses with the way to proceed instead of starting an empty mesh, in
which every agent would be refused and every route gone (issue 7, R1).

Restoring a backup of the same store works (same id). Starting an empty mesh on purpose is
one explicit, one-time act: delete the marker. There is deliberately no start-up flag for it,
which a service unit would keep passing on every later restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gossamer.errors import StoreError
from gossamer.files import PRIVATE_FILE, make_private

#: where a user reads what to do (backups, restores, starting afresh)
DOCS = "docs/store.md"


@dataclass(frozen=True, slots=True)
class Marker:
    store_id: str
    created_at: str


def marker_path(store: Path) -> Path:
    """The marker beside ``store``: ``gossamer.db`` -> ``gossamer.db.id``."""
    return store.with_name(store.name + ".id")


def new_store_id() -> int:
    """A random 63-bit id (SQLite integers are signed 64-bit)."""
    return secrets.randbits(63)


def render(store_id: int) -> str:
    return f"{store_id:016x}"


def read_marker(store: Path) -> Marker | None:
    path = marker_path(store)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Marker(str(data["storeId"]), str(data["createdAt"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StoreError(
            f"cannot read {path}, the identity of the store {store}: it is damaged or "
            f"unreadable ({e}); if {store} is the right store, delete {path} (it is "
            "written again on start)"
        ) from None


def write_marker(store: Path, store_id: str) -> None:
    """Write the marker durably (fsynced file and directory), mode 0600."""
    path = marker_path(store)
    data = {
        "storeId": store_id,
        "createdAt": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "file": store.name,
        "about": f"the identity of {store.name}; see {DOCS} before deleting it",
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, PRIVATE_FILE)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StoreError(
            f"cannot write {path}, the identity of the store {store}: {e.strerror}; check "
            "the directory is writable"
        ) from None


def lost(store: Path, marker: Marker, state: str) -> StoreError:
    """The refusal to open a store that existed but is now ``state``."""
    mark = marker_path(store)
    return StoreError(
        f"refusing to open the store {store}: it is {state}, but {mark} records that store "
        f"{marker.store_id} was created there at {marker.created_at}; starting on it would "
        "start an empty mesh (every agent refused, every route gone). Restore it: with the "
        f"control plane stopped, copy your backup over {store} (delete {store}-wal and "
        f"{store}-shm if present) and start again. To start an empty mesh on purpose (every "
        f"agent must join again), delete {mark} first. See {DOCS}"
    )


def replaced(store: Path, marker: Marker, found: str) -> StoreError:
    mark = marker_path(store)
    return StoreError(
        f"refusing to open the store {store}: it is store {found}, but {mark} records that "
        f"store {marker.store_id} was created there at {marker.created_at}; the file was "
        f"replaced (another mesh's store, or a wrong copy). Put the right store back at "
        f"{store}, or to run this one on purpose delete {mark} first. See {DOCS}"
    )


def check_file(store: Path, marker: Marker | None) -> None:
    """Before SQLite touches ``store``: refuse a missing or 0-byte store that existed."""
    if marker is None:
        return
    try:
        size = store.stat().st_size
    except FileNotFoundError:
        raise lost(store, marker, "missing") from None
    except OSError as e:
        raise StoreError(f"cannot open store at {store}: {e.strerror}") from None
    if size == 0:
        raise lost(store, marker, "empty (0 bytes)")


def make_files_private(store: Path) -> None:
    """The store and the journal files SQLite left beside it: 0600 (SQLite gives new
    journal files the store file's mode)."""
    fd = os.open(store, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        make_private(store.with_name(store.name + suffix))
    make_private(marker_path(store))


def settle(conn: sqlite3.Connection, store: Path, marker: Marker | None, *, created: bool) -> str:
    """Inside the opening transaction: this store's id (given one if it has none); refuses
    a store that is not the one the marker records. Returns the id as rendered."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
    if row is None:
        if marker is not None and created:
            raise lost(store, marker, "an empty database")
        value = new_store_id()
        conn.execute("INSERT INTO meta (key, value) VALUES ('store_id', ?)", (value,))
        found = render(value)
        if marker is not None and marker.store_id != found:
            # a store made before identities existed, with a marker from another one
            raise replaced(store, marker, "without an identity")
        return found
    found = render(int(row[0]))
    if marker is not None and marker.store_id != found:
        raise replaced(store, marker, found)
    return found
