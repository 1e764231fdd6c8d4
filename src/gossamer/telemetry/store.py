"""Closed minutes on disk: SQLite, on one worker thread of its own.

Each flush inserts one row per (key, minute) it took from memory; a key may have several
rows for one minute (an entry that arrived after its minute was flushed), and readers add
them up, so nothing is ever read-modify-written. Sketches are stored serialised (DDSketch
protobuf) and merged when read. ``receipts`` keeps how many entries each proxy sent per
minute, for reconciling with Envoy's own ``logs_written`` (docs/telemetry.md, "Loss");
``reconcile`` each proxy's reconciliation state (``stat_sink``), ``gaps`` the gaps found.
Kept spans live in the same file (``traces_store``), deleted with their minutes.

Retention deletes whole minutes older than ``retention_s``; the disk cap then deletes the
oldest minutes until the file's used pages fit (``auto_vacuum=INCREMENTAL`` gives pages
back). Why SQLite and not DuckDB: docs/telemetry.md, "Store".
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gossamer.errors import ConfigError
from gossamer.telemetry.aggregate import Bucket, Key, sketch_bytes, sketch_of
from gossamer.telemetry.stat_sink import Gap, NodeState
from gossamer.telemetry.traces_store import SPANS_SCHEMA

T = TypeVar("T")

_BUCKET_COLUMNS = """
    minute INTEGER NOT NULL, view TEXT NOT NULL, source TEXT NOT NULL,
    source_kind TEXT NOT NULL, destination TEXT NOT NULL, destination_kind TEXT NOT NULL,
    instance TEXT NOT NULL, endpoint TEXT NOT NULL, requests INTEGER NOT NULL,
    e4xx INTEGER NOT NULL, e5xx INTEGER NOT NULL, bytes_received INTEGER NOT NULL,
    bytes_sent INTEGER NOT NULL, mtls INTEGER NOT NULL, retries INTEGER NOT NULL,
    sketch BLOB NOT NULL
"""
#: ``buckets``: closed minutes; ``open_buckets``: the open ones as of the last flush, kept
#: with the request stats' figures of that moment (``write``'s checkpoint)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS buckets ({_BUCKET_COLUMNS});
CREATE TABLE IF NOT EXISTS open_buckets ({_BUCKET_COLUMNS});
CREATE INDEX IF NOT EXISTS buckets_by_minute ON buckets (minute);
CREATE TABLE IF NOT EXISTS receipts (
    minute INTEGER NOT NULL, node TEXT NOT NULL, entries INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_by_minute ON receipts (minute);
CREATE TABLE IF NOT EXISTS gaps (
    minute INTEGER NOT NULL, node TEXT NOT NULL, service TEXT NOT NULL,
    from_s REAL NOT NULL, to_s REAL NOT NULL, missing INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS gaps_by_minute ON gaps (minute);
CREATE TABLE IF NOT EXISTS reconcile (
    node TEXT PRIMARY KEY, service TEXT NOT NULL, start_s REAL NOT NULL, t_s REAL NOT NULL,
    written INTEGER NOT NULL, received INTEGER NOT NULL, high INTEGER NOT NULL,
    restarts INTEGER NOT NULL, after INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS request_stats (
    id INTEGER PRIMARY KEY CHECK (id = 0), state TEXT NOT NULL
);
"""

Receipt = tuple[int, str, int]  # (minute, node id, entries received)
BucketRow = tuple[Any, ...]


def bucket_rows(buckets: Iterable[tuple[Key, Bucket]]) -> list[BucketRow]:
    """Rows of ``buckets`` (settled), made where the buckets are not changing."""
    return [
        (
            k.minute, k.view, k.source, k.source_kind, k.destination, k.destination_kind,
            k.instance, k.endpoint, b.requests, b.e4xx, b.e5xx, b.bytes_received,
            b.bytes_sent, b.mtls, b.retries, sketch_bytes(b.sketch),
        )
        for k, b in buckets
    ]  # fmt: skip


@dataclass(frozen=True)
class Checkpoint:
    """What a killed service starts again from: its open minutes and the request stats'
    cumulative figures (``stats_records``, JSON) of the same moment. Written in the same
    transaction as the minutes that closed, so no request is in both or in neither."""

    open_rows: list[BucketRow]
    request_stats: str


class TelemetryStore:
    """``await store.open()``, then writes and reads run one at a time on its thread."""

    def __init__(self, path: Path, retention_s: float, max_bytes: int) -> None:
        self.path = path
        self.retention_minutes = max(1, int(retention_s // 60))
        self.max_bytes = max_bytes
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="telemetry-store")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(db, *args)`` on the store's thread (``traces_store``'s functions)."""
        return await self._run(fn, self.db, *args)

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # (takes effect on a new file)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
            db.executescript(SPANS_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"--data: cannot open {self.path} as SQLite: {e}") from None
        self._db = db

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "TelemetryStore.open() first"
        return self._db

    async def close(self) -> None:
        await self._run(self._close)
        self._pool.shutdown(wait=True)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def write(
        self,
        buckets: dict[Key, Bucket],
        receipts: Iterable[Receipt],
        checkpoint: Checkpoint | None = None,
    ) -> None:
        """Insert ``buckets`` (settled; not used again by the caller) and ``receipts``, and
        replace the checkpoint, in one transaction."""
        await self._run(self._write, buckets, list(receipts), checkpoint)

    def _write(
        self, buckets: dict[Key, Bucket], receipts: list[Receipt], checkpoint: Checkpoint | None
    ) -> None:
        rows = bucket_rows(buckets.items())
        values = ",".join("?" * 16)
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(f"INSERT INTO buckets VALUES ({values})", rows)
            self.db.executemany("INSERT INTO receipts VALUES (?, ?, ?)", receipts)
            if checkpoint is not None:
                self.db.execute("DELETE FROM open_buckets")
                self.db.executemany(
                    f"INSERT INTO open_buckets VALUES ({values})", checkpoint.open_rows
                )
                self.db.execute(
                    "INSERT OR REPLACE INTO request_stats VALUES (0, ?)",
                    (checkpoint.request_stats,),
                )

    async def buckets(self, since_minute: int) -> list[tuple[Key, Bucket]]:
        return await self._run(self._buckets, since_minute)

    async def saved_open_buckets(self) -> list[tuple[Key, Bucket]]:
        """The open minutes as of the last checkpoint (a killed service's: it had not
        written them yet; a stopped one wrote them all and left none)."""
        return await self._run(self._buckets, None)

    def _buckets(self, since_minute: int | None) -> list[tuple[Key, Bucket]]:
        out: list[tuple[Key, Bucket]] = []
        columns = (
            "view, source, source_kind, destination, destination_kind, instance, endpoint, "
            "minute, requests, e4xx, e5xx, bytes_received, bytes_sent, mtls, retries, sketch"
        )
        if since_minute is None:
            cursor = self.db.execute(f"SELECT {columns} FROM open_buckets")
        else:
            cursor = self.db.execute(
                f"SELECT {columns} FROM buckets WHERE minute >= ?", (since_minute,)
            )
        for row in cursor:
            bucket = Bucket()
            (
                bucket.requests, bucket.e4xx, bucket.e5xx, bucket.bytes_received,
                bucket.bytes_sent, bucket.mtls, bucket.retries,
            ) = row[8:15]  # fmt: skip
            bucket.sketch = sketch_of(row[15])
            out.append((Key(*row[:8]), bucket))
        return out

    async def receipts(self, since_minute: int) -> dict[str, int]:
        """Entries received per proxy (node id) from ``since_minute`` on."""
        return await self._run(self._receipts, since_minute)

    def _receipts(self, since_minute: int) -> dict[str, int]:
        cursor = self.db.execute(
            "SELECT node, SUM(entries) FROM receipts WHERE minute >= ? GROUP BY node",
            (since_minute,),
        )
        return {node: int(total) for node, total in cursor}

    async def write_reconcile(self, states: list[tuple[NodeState, int]], gaps: list[Gap]) -> None:
        """Replace each node's reconciliation state; add the gaps found."""
        await self._run(self._write_reconcile, states, gaps)

    def _write_reconcile(self, states: list[tuple[NodeState, int]], gaps: list[Gap]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO reconcile VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (s.node, s.service, s.start_s, s.t_s, s.written, s.received, s.high,
                     s.restarts, after)
                    for s, after in states
                ],
            )  # fmt: skip
            self.db.executemany(
                "INSERT INTO gaps VALUES (?, ?, ?, ?, ?, ?)",
                [(int(g.to_s) // 60, g.node, g.service, g.from_s, g.to_s, g.missing) for g in gaps],
            )

    async def reconcile_states(self) -> list[tuple[NodeState, int]]:
        return await self._run(self._reconcile_states)

    def _reconcile_states(self) -> list[tuple[NodeState, int]]:
        rows = self.db.execute(
            "SELECT node, service, start_s, t_s, written, received, high, restarts, after "
            "FROM reconcile"
        ).fetchall()
        return [(NodeState(*row[:8]), int(row[8])) for row in rows]

    async def request_stats(self) -> str | None:
        return await self._run(self._request_stats)

    def _request_stats(self) -> str | None:
        row = self.db.execute("SELECT state FROM request_stats WHERE id = 0").fetchone()
        return None if row is None else str(row[0])

    async def gaps(self, since_minute: int) -> list[Gap]:
        """Gaps whose interval ended in or after ``since_minute``, oldest first."""
        return await self._run(self._gaps, since_minute)

    def _gaps(self, since_minute: int) -> list[Gap]:
        rows = self.db.execute(
            "SELECT node, service, from_s, to_s, missing FROM gaps WHERE minute >= ? ORDER BY to_s",
            (since_minute,),
        )
        return [Gap(*row) for row in rows]

    async def prune(self, now_minute: int) -> int:
        """Apply retention, then the disk cap; the minutes deleted."""
        return await self._run(self._prune, now_minute)

    def _used_bytes(self) -> int:
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self.db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def _delete_before(self, minute: int) -> int:
        with self.db:
            self.db.execute("BEGIN")
            gone = self.db.execute("DELETE FROM buckets WHERE minute < ?", (minute,)).rowcount
            self.db.execute("DELETE FROM receipts WHERE minute < ?", (minute,))
            self.db.execute("DELETE FROM gaps WHERE minute < ?", (minute,))
            gone += self.db.execute("DELETE FROM spans WHERE minute < ?", (minute,)).rowcount
        return int(gone)

    def _prune(self, now_minute: int) -> int:
        deleted = 0
        if self._delete_before(now_minute - self.retention_minutes):
            deleted += 1
        while self._used_bytes() > self.max_bytes:
            oldest = self.db.execute(
                "SELECT MIN(m) FROM (SELECT MIN(minute) AS m FROM buckets "
                "UNION ALL SELECT MIN(minute) FROM spans)"
            ).fetchone()[0]
            if oldest is None:
                break
            self._delete_before(oldest + 1)
            deleted += 1
        if deleted:
            self.db.execute("PRAGMA incremental_vacuum")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted
