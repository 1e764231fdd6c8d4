"""Spans in the store: search by service, status, minimum duration, window, request id;
one trace with parent links in depth-first order; retention deletes spans with their
minutes; bad search parameters are refused naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio

from gossamer.errors import ValidationError
from gossamer.telemetry.store import TelemetryStore
from gossamer.telemetry.traces import Span
from gossamer.telemetry.traces_query import (
    check_trace_id,
    parse_ms,
    summary,
    trace_filter,
    trace_json,
)
from gossamer.telemetry.traces_store import search, trace_spans, write_spans

MS = 1_000_000
T0 = 1_800_000_000 * 1000  # ms
MINUTE0 = T0 // 60_000


def span(
    trace: int, sid: int, parent: int, service: str, start: float, ms: float, status: int = 200
) -> Span:
    start_ns = int((T0 + start) * MS)
    return Span(
        f"{trace:032x}", f"{sid:016x}", f"{parent:016x}" if parent else "", service,
        f"op-{sid}", 2, start_ns, start_ns + int(ms * MS), status, status >= 500,
        f"req-{trace}" if not parent else "", {"k": "v"},
    )  # fmt: skip


def three_hops(trace: int, start: float, b_status: int = 200, b_ms: float = 5) -> list[Span]:
    """gateway -> its upstream span -> a -> b."""
    return [
        span(trace, 1, 0, "default/edge", start, b_ms + 20, b_status),
        span(trace, 2, 1, "default/edge", start + 1, b_ms + 18, b_status),
        span(trace, 3, 2, "default/a", start + 2, b_ms + 15, b_status),
        span(trace, 4, 3, "default/b", start + 5, b_ms, b_status),
    ]


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> TelemetryStore:
    s = TelemetryStore(tmp_path / "t.sqlite", retention_s=600, max_bytes=1 << 30)
    await s.open()
    spans = three_hops(1, 0) + three_hops(2, 1000, b_status=503) + three_hops(3, 2000, b_ms=300)
    spans += [span(4, 1, 0, "default/c", 70 * 60_000, 3, 404)]  # 70 minutes later
    await s.call(write_spans, spans)
    return s


def ids(found: list[list[Span]]) -> list[int]:
    return [int(spans[0].trace_id, 16) for spans in found]


@pytest.mark.asyncio
async def test_search_filters_and_newest_first(store: TelemetryStore) -> None:
    try:

        def q(**kw: object) -> list[int]:
            f = trace_filter(MINUTE0, **kw)  # type: ignore[arg-type]
            return ids(search(store.db, f))

        assert q() == [4, 3, 2, 1]
        assert q(service="default/b") == [3, 2, 1]
        assert q(status="5xx") == [2] and q(status="503") == [2] and q(status="error") == [2]
        assert q(status="4xx") == [4] and q(status="ok") == [3, 1]
        assert q(min_duration_ms=300) == [3]
        assert q(request_id="req-2") == [2]
        assert q(limit=2) == [4, 3]
        assert ids(search(store.db, trace_filter(MINUTE0 + 60))) == [4]
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_one_trace_has_parent_links_and_a_summary(store: TelemetryStore) -> None:
    try:
        spans = await store.call(trace_spans, f"{2:032x}")
        view = trace_json(spans)
        got = [(s["service"], s["depth"], s["parentSpanId"], s["startMs"]) for s in view["spans"]]
        assert got == [
            ("default/edge", 0, None, 0.0),
            ("default/edge", 1, f"{1:016x}", 1.0),
            ("default/a", 2, f"{2:016x}", 2.0),
            ("default/b", 3, f"{3:016x}", 5.0),
        ]
        assert view["durationMs"] == 25.0
        s = summary(spans)
        assert (s["rootService"], s["status"], s["error"], s["requestId"]) == (
            "default/edge", 503, True, "req-2",
        )  # fmt: skip
        assert s["services"] == ["default/a", "default/b", "default/edge"] and s["spans"] == 4
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_retention_deletes_spans_with_their_minutes(store: TelemetryStore) -> None:
    try:
        await store.prune(MINUTE0 + 70 + 5)  # retention 10 minutes: only trace 4 is left
        assert ids(search(store.db, trace_filter(0))) == [4]
    finally:
        await store.close()


def test_bad_parameters_name_their_field() -> None:
    for kw, field in (
        ({"status": "teapot"}, "status"),
        ({"min_duration_ms": -1.0}, "minDurationMs"),
        ({"limit": 0}, "limit"),
    ):
        with pytest.raises(ValidationError) as e:
            trace_filter(0, **kw)  # type: ignore[arg-type]
        assert e.value.errors[0].path == field
    with pytest.raises(ValidationError, match="32 hex"):
        check_trace_id("xyz")
    assert check_trace_id("AB" * 16) == "ab" * 16
    assert (parse_ms("100ms", "f"), parse_ms("1.5s", "f"), parse_ms("2m", "f")) == (
        100,
        1500,
        120000,
    )
    with pytest.raises(ValidationError, match="100ms"):
        parse_ms("soon", "--min-duration")
