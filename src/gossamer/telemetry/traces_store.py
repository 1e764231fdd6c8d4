"""Spans on disk: a ``spans`` table in the telemetry store's SQLite file.

Written and read on the store's own thread (``TelemetryStore.call``), so neither the
ingestion nor the API waits on disk in the event loop. Each span row carries its minute
(of its start), so retention and the disk cap delete spans with the minute aggregates
(``TelemetryStore.prune``). Attributes are JSON, encoded on the store's thread.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from gossamer.telemetry.traces import Span

SPANS_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT NOT NULL,
    service TEXT NOT NULL, name TEXT NOT NULL, kind INTEGER NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, status INTEGER NOT NULL,
    error INTEGER NOT NULL, request_id TEXT NOT NULL, attributes TEXT NOT NULL,
    minute INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_by_trace ON spans (trace_id);
CREATE INDEX IF NOT EXISTS spans_by_minute ON spans (minute);
CREATE INDEX IF NOT EXISTS spans_by_request ON spans (request_id);
"""

_COLUMNS = (
    "trace_id, span_id, parent_id, service, name, kind, start_ns, end_ns, status, error, "
    "request_id, attributes"
)


@dataclass(frozen=True)
class TraceFilter:
    """What a trace search asks for; every given field must match (some span of the trace
    for ``service``, ``status`` and ``request_id``; the whole trace for ``min_duration_ms``)."""

    since_minute: int
    service: str | None = None
    #: "5xx", "4xx", "error", "ok" or one status code ("503")
    status: str | None = None
    min_duration_ms: float | None = None
    request_id: str | None = None
    limit: int = 20


def write_spans(db: sqlite3.Connection, spans: Sequence[Span]) -> None:
    rows = [
        (
            s.trace_id, s.span_id, s.parent_id, s.service, s.name, s.kind, s.start_ns,
            s.end_ns, s.status, int(s.error), s.request_id,
            json.dumps(s.attributes, separators=(",", ":")), s.start_ns // 60_000_000_000,
        )
        for s in spans
    ]  # fmt: skip
    with db:
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO spans VALUES ({','.join('?' * 13)})", rows)


def _span(row: Sequence[object]) -> Span:
    values = list(row)
    values[9] = bool(values[9])
    values[11] = json.loads(str(values[11]))
    return Span(*values)  # type: ignore[arg-type]


def trace_spans(db: sqlite3.Connection, trace_id: str) -> list[Span]:
    cursor = db.execute(
        f"SELECT {_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns", (trace_id,)
    )
    return [_span(row) for row in cursor]


def _status_condition(status: str) -> tuple[str, str, list[object]]:
    """(a condition on a span, a HAVING condition on the trace, their parameters)."""
    if status == "5xx":
        return "(error = 1 OR status BETWEEN 500 AND 599)", "", []
    if status == "4xx":
        return "status BETWEEN 400 AND 499", "", []
    if status == "error":
        return "error = 1", "", []
    if status == "ok":
        return "", "MAX(error) = 0 AND MAX(status) < 400", []
    return "status = ?", "", [int(status)]


def search(db: sqlite3.Connection, f: TraceFilter) -> list[list[Span]]:
    """The newest ``f.limit`` traces matching ``f``, each as its spans (start order)."""
    where = ["minute >= ?"]
    params: list[object] = [f.since_minute]
    having: list[str] = []
    having_params: list[object] = []
    if f.service is not None:
        where.append("service = ?")
        params.append(f.service)
    if f.request_id is not None:
        where.append("request_id = ?")
        params.append(f.request_id)
    if f.status is not None:
        span_cond, trace_cond, extra = _status_condition(f.status)
        if span_cond:
            where.append(span_cond)
            params += extra
        if trace_cond:
            having.append(trace_cond)
    if f.min_duration_ms is not None:
        having.append("MAX(end_ns) - MIN(start_ns) >= ?")
        having_params.append(int(f.min_duration_ms * 1e6))
    sql = (
        "SELECT trace_id FROM spans WHERE trace_id IN "
        f"(SELECT DISTINCT trace_id FROM spans WHERE {' AND '.join(where)}) "
        "GROUP BY trace_id "
        + (f"HAVING {' AND '.join(having)} " if having else "")
        + "ORDER BY MIN(start_ns) DESC LIMIT ?"
    )
    ids = [row[0] for row in db.execute(sql, [*params, *having_params, f.limit])]
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    by_trace: dict[str, list[Span]] = {i: [] for i in ids}
    cursor = db.execute(
        f"SELECT {_COLUMNS} FROM spans WHERE trace_id IN ({marks}) ORDER BY start_ns", ids
    )
    for row in cursor:
        by_trace[str(row[0])].append(_span(row))
    return [by_trace[i] for i in ids]
