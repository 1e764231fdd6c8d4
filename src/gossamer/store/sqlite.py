"""The embedded default store: one SQLite file, WAL journal, fsync on every commit.

All SQL runs on one connection in one dedicated thread, so the event loop never blocks and
operations never interleave. The file is opened in exclusive locking mode: one process owns
a store at a time (a second one gets a clear ``StoreError``), which is what lets watchers be
woken in-process instead of polling the file.

Tables: ``resources`` (the current manifests), ``changes`` (one row per changed resource per
transaction, replayed by ``watch``; rows older than ``history`` revisions are compacted in
the same transaction that writes new ones) and ``meta`` (revision, compact_revision).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, TypedDict, TypeVar, cast

from gossamer.errors import ConfigError, StoreError
from gossamer.store.base import Change, StoredResource
from gossamer.store.memory import (
    DEFAULT_HISTORY,
    PreparedApply,
    check_not_compacted,
    check_watch_start,
    prepare_apply,
)
from gossamer.types import Manifest, ResourceKey

_T = TypeVar("_T")

#: Stamped into the file header so we never mistake another program's database for ours.
_APPLICATION_ID = 0x47534D52  # "GSMR"
_SCHEMA_VERSION = 1
#: How many revisions a watcher reads from the log per round trip when it is behind.
_WATCH_BATCH = 256

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE resources (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    manifest TEXT NOT NULL, revision INTEGER NOT NULL, create_revision INTEGER NOT NULL,
    PRIMARY KEY (kind, namespace, name)
) WITHOUT ROWID;
CREATE INDEX resources_by_namespace ON resources (namespace, kind, name);
CREATE TABLE changes (
    revision INTEGER NOT NULL, seq INTEGER NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('put', 'delete')),
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    manifest TEXT NOT NULL, resource_revision INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('revision', 0), ('compact_revision', 0);
"""

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
class _State:
    """What the event-loop side mirrors after open and after each commit."""

    revision: int
    compact_revision: int
    resources: int
    log_entries: int


class SQLiteStoreStatistics(TypedDict):
    path: str
    revision: int
    resources: int
    #: changes (not transactions) kept for watchers
    log_entries: int
    #: watchers can start from this revision or later
    compact_revision: int
    history: int
    watchers: int


class _Database:
    """The SQL. Every method runs in the store's one thread, never on the event loop."""

    def __init__(self, path: Path, history: int, lock_timeout: float) -> None:
        self._path = path
        self._history = history
        self._lock_timeout = lock_timeout
        self._conn: sqlite3.Connection | None = None
        self._state = _State(0, 0, 0, 0)

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

    def open(self) -> _State:
        try:
            self._conn = sqlite3.connect(
                self._path, timeout=self._lock_timeout, isolation_level=None
            )
        except sqlite3.Error as e:
            raise self.error("open", e) from e
        try:
            self._init()
        except BaseException:
            with contextlib.suppress(StoreError):
                self.close()
            raise
        return self._state

    def _init(self) -> None:
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
                if app_id == 0:
                    for statement in _SCHEMA.split(";")[:-1]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                elif version != _SCHEMA_VERSION:
                    raise StoreError(
                        f"cannot open store at {self._path}: it has schema "
                        f"version {version}, this Gossamer reads version "
                        f"{_SCHEMA_VERSION}; use the matching Gossamer release"
                    )
                (resources,) = conn.execute("SELECT count(*) FROM resources").fetchone()
                (log_entries,) = conn.execute("SELECT count(*) FROM changes").fetchone()
                self._state = _State(
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

    def apply(self, prepared: PreparedApply) -> _State | None:
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
        self._state = _State(
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


class SQLiteStore:
    """A durable ``Store`` in one SQLite file; open it with ``await SQLiteStore.open(path)``.

    ``apply`` returns only after the transaction is fsynced (WAL, ``synchronous=FULL``):
    it survives the process being killed at any moment afterwards.
    """

    def __init__(
        self, path: Path, history: int, db: _Database, state: _State, executor: ThreadPoolExecutor
    ) -> None:
        """Use ``SQLiteStore.open``."""
        self._path = path
        self._history = history
        self._db = db
        self._state = state
        self._executor = executor
        self._closed = False
        self._watchers = 0
        self._changed = asyncio.Event()

    @classmethod
    async def open(
        cls, path: Path | str, *, history: int = DEFAULT_HISTORY, lock_timeout: float = 1.0
    ) -> SQLiteStore:
        """Open or create the store at ``path`` (its directory must exist).

        ``history``: revisions of changes kept for watchers that start in the past.
        ``lock_timeout``: seconds to wait for another process to let go of the file.
        """
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ConfigError(
                f"store history must be an integer >= 1 (revisions of changes "
                f"kept for watchers), got {history!r}"
            )
        path = Path(path)
        db = _Database(path, history, lock_timeout)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gossamer-sqlite")
        try:
            state = await asyncio.get_running_loop().run_in_executor(executor, db.open)
        except BaseException:
            await asyncio.to_thread(executor.shutdown)
            raise
        return cls(path, history, db, state, executor)

    async def __aenter__(self) -> SQLiteStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def path(self) -> Path:
        return self._path

    async def revision(self) -> int:
        self._check_open()
        return self._state.revision

    async def apply(
        self, puts: Sequence[Manifest] = (), deletes: Sequence[ResourceKey] = ()
    ) -> int:
        prepared = prepare_apply(puts, deletes)
        loop = asyncio.get_running_loop()

        def commit() -> _State | None:
            state = self._db.apply(prepared)
            if state is not None:
                # Scheduled before this job's result is delivered, and even if the caller
                # was cancelled meanwhile: watchers always learn of a committed revision.
                with contextlib.suppress(RuntimeError):  # the loop is gone
                    loop.call_soon_threadsafe(self._committed, state)
            return state

        state = await self._call(commit)
        return self._state.revision if state is None else state.revision

    async def get(self, key: ResourceKey) -> StoredResource | None:
        return await self._call(self._db.get, ResourceKey(*key))

    async def list(
        self, kind: str | None = None, namespace: str | None = None
    ) -> tuple[list[StoredResource], int]:
        return await self._call(self._db.list, kind, namespace)

    def watch(self, from_revision: int) -> AsyncIterator[builtins.list[Change]]:
        """See ``Store.watch``. A bad or compacted ``from_revision`` raises here, at the
        call; a watcher that falls more than ``history`` revisions behind gets
        ``ConflictError`` from its next step. The watch ends when the store is closed."""
        self._check_open()
        check_watch_start(
            from_revision, self._state.revision, self._state.compact_revision, self._history
        )
        return self._watch(from_revision)

    async def _watch(self, cursor: int) -> AsyncIterator[builtins.list[Change]]:
        self._watchers += 1
        pending: deque[list[Change]] = deque()
        try:
            while not self._closed:
                if pending:
                    yield pending.popleft()
                    continue
                if cursor < self._state.revision:
                    upto = min(self._state.revision, cursor + _WATCH_BATCH)
                    pending.extend(await self._call(self._db.changes, cursor, upto))
                    cursor = upto
                    continue
                await self._changed.wait()
        finally:
            self._watchers -= 1

    async def close(self) -> None:
        """Close the file; running watches end, other calls raise ``StoreError``."""
        if self._closed:
            return
        self._closed = True
        self._wake_watchers()
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._db.close)
        finally:
            await asyncio.to_thread(self._executor.shutdown)

    def statistics(self) -> SQLiteStoreStatistics:
        state = self._state
        return SQLiteStoreStatistics(
            path=str(self._path),
            revision=state.revision,
            resources=state.resources,
            log_entries=state.log_entries,
            compact_revision=state.compact_revision,
            history=self._history,
            watchers=self._watchers,
        )

    def _committed(self, state: _State) -> None:
        if state.revision > self._state.revision:
            self._state = state
            self._wake_watchers()

    def _wake_watchers(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store at {self._path} is closed; open it again")

    async def _call(self, fn: Callable[..., _T], *args: object) -> _T:
        self._check_open()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
