"""The embedded default store: one SQLite file, WAL journal, fsync on every commit.

All SQL runs on one connection in one dedicated thread, so the event loop never blocks and
operations never interleave. The file is opened in exclusive locking mode: one process owns
a store at a time (a second one gets a clear ``StoreError``), which is what lets watchers be
woken in-process instead of polling the file.

Tables: ``resources`` (the current manifests), ``changes`` (one row per changed resource per
transaction, replayed by ``watch``; rows older than ``history`` revisions are compacted in
the same transaction that writes new ones) and ``meta`` (revision, compact_revision,
store_id: see ``identity.py``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from gossamer.errors import ConfigError, StoreError
from gossamer.store.base import Change, Fence, StoredResource, StoreStatistics
from gossamer.store.memory import (
    DEFAULT_HISTORY,
    check_unchanged,
    check_watch_start,
    prepare_apply,
)
from gossamer.store.sqlite_db import WATCH_BATCH, Database, DbState
from gossamer.types import Manifest, ResourceKey

_T = TypeVar("_T")


class SQLiteStore:
    """A durable ``Store`` in one SQLite file; open it with ``await SQLiteStore.open(path)``.

    ``apply`` returns only after the transaction is fsynced (WAL, ``synchronous=FULL``):
    it survives the process being killed at any moment afterwards.
    """

    #: (the file is locked exclusively: see ``Store.exclusive``)
    exclusive = True

    def __init__(
        self, path: Path, history: int, db: Database, state: DbState, executor: ThreadPoolExecutor
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
        db = Database(path, history, lock_timeout)
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

    @property
    def store_id(self) -> str:
        """This store's identity (16 hex digits), also kept beside it in ``<file>.id``."""
        return self._db.store_id

    async def revision(self) -> int:
        self._check_open()
        return self._state.revision

    async def apply(
        self,
        puts: Sequence[Manifest] = (),
        deletes: Sequence[ResourceKey] = (),
        *,
        fence: Fence | None = None,  # one process owns this store: its one leader
        unchanged_since: int | None = None,
    ) -> int:
        prepared = prepare_apply(puts, deletes)
        # (the file is locked to this process, whose writes are serialised: its revision
        # is the newest write's)
        check_unchanged(unchanged_since, self._state.revision)
        loop = asyncio.get_running_loop()

        def commit() -> DbState | None:
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
                    upto = min(self._state.revision, cursor + WATCH_BATCH)
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

    def statistics(self) -> StoreStatistics:
        state = self._state
        return StoreStatistics(
            backend="sqlite",
            path=str(self._path),
            revision=state.revision,
            resources=state.resources,
            log_entries=state.log_entries,
            compact_revision=state.compact_revision,
            history=self._history,
            watchers=self._watchers,
        )

    def _committed(self, state: DbState) -> None:
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
