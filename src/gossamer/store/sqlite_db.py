"""The SQLite side of ``SQLiteStore``: schema, one connection, transactions, as plain blocking
calls. ``SQLiteStore`` runs every call in its one dedicated thread."""

from __future__ import annotations

import builtins
import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from gossamer.errors import StoreError
from gossamer.store.base import Change, StoredResource
from gossamer.store.identity import (
    Marker,
    check_file,
    make_files_private,
    read_marker,
    settle,
    write_marker,
)
from gossamer.store.memory import PreparedApply, check_not_compacted
from gossamer.types import ResourceKey

#: Stamped into the file header so we never mistake another program's database for ours.
_APPLICATION_ID = 0x47534D52  # "GSMR"
_SCHEMA_VERSION = 2
#: How many revisions a watcher reads from the log per round trip when it is behind.
WATCH_BATCH = 256

# Manifests live in rowid tables: in a WITHOUT ROWID table a row is its own key, and a seek
# reads in full every large row it compares with (schema version 1 did that: after one 5 MB
# resource every apply of 2,000 resources took 14 s instead of 0.3 s).
_TABLES = {
    "resources": """CREATE TABLE resources (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    manifest TEXT NOT NULL, revision INTEGER NOT NULL, create_revision INTEGER NOT NULL,
    PRIMARY KEY (kind, namespace, name)
)""",
    "changes": """CREATE TABLE changes (
    revision INTEGER NOT NULL, seq INTEGER NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('put', 'delete')),
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    manifest TEXT NOT NULL, resource_revision INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    PRIMARY KEY (revision, seq)
)""",
}
_INDEX = "CREATE INDEX resources_by_namespace ON resources (namespace, kind, name)"

_SCHEMA = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
{_TABLES["resources"]};
{_INDEX};
{_TABLES["changes"]};
INSERT INTO meta (key, value) VALUES ('revision', 0), ('compact_revision', 0);
"""


def _migrate_from_1(conn: sqlite3.Connection) -> None:
    """Version 1 -> 2: the same rows, moved into rowid tables (inside the open transaction)."""
    for table, ddl in _TABLES.items():
        conn.execute(f"ALTER TABLE {table} RENAME TO {table}_v1")
        conn.execute(ddl)
        conn.execute(f"INSERT INTO {table} SELECT * FROM {table}_v1")
        conn.execute(f"DROP TABLE {table}_v1")
    conn.execute(_INDEX)
    conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")


_HINTS = {
    "SQLITE_CANTOPEN": "check the directory exists and is writable",
    "SQLITE_BUSY": "another process has this store open; stop it or use another path",
    "SQLITE_LOCKED": "another process has this store open; stop it or use another path",
    "SQLITE_READONLY": "check the file and its directory are writable",
    "SQLITE_PERM": "check the file and its directory are writable",
    "SQLITE_FULL": "free some disk space and retry",
    "SQLITE_IOERR": "check the disk and the file system holding the store",
    "SQLITE_NOTADB": "the file is not a Gossamer store; use another path",
    "SQLITE_CORRUPT": "the file is damaged; restore it from a backup or use another path",
}


@dataclass(frozen=True, slots=True)
class DbState:
    """What the event-loop side mirrors after open and after each commit."""

    revision: int
    compact_revision: int
    resources: int
    log_entries: int


class Database:
    """The SQL. Every method runs in the store's one thread, never on the event loop."""

    def __init__(self, path: Path, history: int, lock_timeout: float) -> None:
        self._path = path
        self._history = history
        self._lock_timeout = lock_timeout
        self._conn: sqlite3.Connection | None = None
        self._state = DbState(0, 0, 0, 0)
        #: this store's identity (``identity.py``), known once open
        self.store_id = ""

    def error(self, action: str, e: sqlite3.Error, consequence: str = "") -> StoreError:
        code = getattr(e, "sqlite_errorname", "")
        hint = _HINTS.get(code) or next(
            (h for c, h in _HINTS.items() if code.startswith(c + "_")), ""
        )
        parts = [f"cannot {action} store at {self._path}: {e}", consequence, hint]
        return StoreError("; ".join(p for p in parts if p))

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store at {self._path} is closed; open it again")
        return self._conn

    def open(self) -> DbState:
        marker = read_marker(self._path)
        check_file(self._path, marker)
        try:
            make_files_private(self._path)
        except OSError as e:
            raise StoreError(
                f"cannot open store at {self._path}: {e.strerror}; check the directory "
                "exists and is writable"
            ) from None
        try:
            self._conn = sqlite3.connect(
                self._path, timeout=self._lock_timeout, isolation_level=None
            )
        except sqlite3.Error as e:
            raise self.error("open", e) from e
        try:
            self._init(marker)
            if marker is None or marker.store_id != self.store_id:
                write_marker(self._path, self.store_id)
        except BaseException:
            with contextlib.suppress(StoreError):
                self.close()
            raise
        return self._state

    def _init(self, marker: Marker | None) -> None:
        conn = self.conn
        try:
            conn.execute("PRAGMA locking_mode = EXCLUSIVE")
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode != "wal":
                raise StoreError(
                    f"cannot open store at {self._path}: SQLite refused WAL "
                    f"mode (got {mode!r}); put the store on a local disk"
                )
            conn.execute("PRAGMA synchronous = FULL")
            with self._transaction():
                (app_id,) = conn.execute("PRAGMA application_id").fetchone()
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                if app_id != _APPLICATION_ID and (app_id != 0 or tables):
                    raise StoreError(
                        f"cannot open store at {self._path}: it is an SQLite "
                        "database of another program; use another path"
                    )
                created = app_id == 0
                if created:
                    for statement in _SCHEMA.split(";")[:-1]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                elif version == 1:
                    _migrate_from_1(conn)
                elif version != _SCHEMA_VERSION:
                    raise StoreError(
                        f"cannot open store at {self._path}: it has schema "
                        f"version {version}, this Gossamer reads version "
                        f"{_SCHEMA_VERSION}; use the matching Gossamer release"
                    )
                self.store_id = settle(conn, self._path, marker, created=created)
                (resources,) = conn.execute("SELECT count(*) FROM resources").fetchone()
                (log_entries,) = conn.execute("SELECT count(*) FROM changes").fetchone()
                self._state = DbState(
                    self._meta("revision"), self._meta("compact_revision"), resources, log_entries
                )
        except sqlite3.Error as e:
            raise self.error("open", e) from e

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def _meta(self, key: str) -> int:
        (value,) = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(value)

    def apply(self, prepared: PreparedApply) -> DbState | None:
        """Commit one transaction durably; ``None`` if every write was a no-op."""
        conn = self.conn
        try:
            with self._transaction():
                revision = self._meta("revision") + 1
                rows: list[tuple[str, ResourceKey, str, int, int]] = []
                for key, text in prepared.puts:
                    old = self._row(key)
                    if old is None:
                        rows.append(("put", key, text, revision, revision))
                    elif old[0] != text:
                        rows.append(("put", key, text, revision, old[2]))
                for key in prepared.deletes:
                    old = self._row(key)
                    if old is not None:
                        rows.append(("delete", key, *old))
                if not rows:
                    return None  # the transaction wrote nothing; ending it is a no-op
                created = deleted = 0
                for type_, key, text, _, create_revision in rows:
                    if type_ == "put":
                        created += create_revision == revision
                        conn.execute(
                            "INSERT OR REPLACE INTO resources VALUES (?, ?, ?, ?, ?, ?)",
                            (*key, text, revision, create_revision),
                        )
                    else:
                        deleted += 1
                        conn.execute(
                            "DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?",
                            key,
                        )
                conn.executemany(
                    "INSERT INTO changes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (revision, seq, type_, *key, text, res_rev, create_rev)
                        for seq, (type_, key, text, res_rev, create_rev) in enumerate(rows)
                    ],
                )
                conn.execute("UPDATE meta SET value = ? WHERE key = 'revision'", (revision,))
                compact = self._state.compact_revision
                compacted = 0
                if revision - self._history > compact:
                    compact = revision - self._history
                    compacted = conn.execute(
                        "DELETE FROM changes WHERE revision <= ?", (compact,)
                    ).rowcount
                    conn.execute(
                        "UPDATE meta SET value = ? WHERE key = 'compact_revision'", (compact,)
                    )
        except sqlite3.Error as e:
            raise self.error("write to", e, "nothing was applied") from e
        old_state = self._state
        self._state = DbState(
            revision,
            compact,
            old_state.resources + created - deleted,
            old_state.log_entries + len(rows) - compacted,
        )
        return self._state

    def _row(self, key: ResourceKey) -> tuple[str, int, int] | None:
        row = self.conn.execute(
            "SELECT manifest, revision, create_revision FROM resources "
            "WHERE kind = ? AND namespace = ? AND name = ?",
            key,
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    # Reads need no explicit transaction: this thread is the only user of the connection,
    # so nothing can commit between two statements of one read.

    def get(self, key: ResourceKey) -> StoredResource | None:
        try:
            row = self._row(key)
        except sqlite3.Error as e:
            raise self.error("read", e) from e
        return None if row is None else StoredResource(key, json.loads(row[0]), row[1], row[2])

    def list(self, kind: str | None, namespace: str | None) -> tuple[list[StoredResource], int]:
        try:
            # Only the filters given, so SQLite can use the key or the namespace index.
            filters = {"kind": kind, "namespace": namespace}
            where = " AND ".join(f"{column} = ?" for column, v in filters.items() if v is not None)
            cursor = self.conn.execute(
                "SELECT kind, namespace, name, manifest, revision, create_revision "
                f"FROM resources {'WHERE ' + where if where else ''} "
                "ORDER BY kind, namespace, name",
                [v for v in filters.values() if v is not None],
            )
            found = [
                StoredResource(ResourceKey(k, ns, n), json.loads(m), rev, created)
                for k, ns, n, m, rev, created in cursor
            ]
            return found, self._meta("revision")
        except sqlite3.Error as e:
            raise self.error("read", e) from e

    def changes(self, after: int, upto: int) -> builtins.list[builtins.list[Change]]:
        """The transactions ``after < revision <= upto``, one list each, oldest first."""
        try:
            check_not_compacted(after, self._meta("compact_revision"), self._history)
            cursor = self.conn.execute(
                "SELECT revision, type, kind, namespace, name, manifest, resource_revision, "
                "create_revision FROM changes WHERE revision > ? AND revision <= ? "
                "ORDER BY revision, seq",
                (after, upto),
            )
            batches: list[list[Change]] = []
            last = after
            for revision, type_, kind, ns, name, text, res_rev, created in cursor:
                key = ResourceKey(kind, ns, name)
                change = Change(
                    cast(Literal["put", "delete"], type_),
                    key,
                    StoredResource(key, json.loads(text), res_rev, created),
                    revision,
                )
                if revision != last:
                    batches.append([])
                    last = revision
                batches[-1].append(change)
            return batches
        except sqlite3.Error as e:
            raise self.error("read", e) from e

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as e:
                raise self.error("close", e) from e
