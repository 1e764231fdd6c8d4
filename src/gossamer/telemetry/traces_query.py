"""Trace search and one trace's spans, in the API's names.

- ``GET /v1/traces?service=&status=&minDurationMs=&since=&requestId=&limit=``: summaries,
  newest first: ``{"traceId", "start", "durationMs", "rootService", "rootName", "services",
  "spans", "status", "error", "requestId"}``;
- ``GET /v1/traces/{traceId}``: ``{"traceId", "start", "durationMs", "spans": [{"spanId",
  "parentSpanId", "service", "name", "kind", "startMs" (from the trace's start),
  "durationMs", "status", "error", "requestId", "attributes"}]}``, parents before children.
"""

from __future__ import annotations

import re
from typing import Any

from gossamer.errors import FieldError, ValidationError
from gossamer.telemetry.traces import Span
from gossamer.telemetry.traces_store import TraceFilter

_STATUS = re.compile(r"^(5xx|4xx|error|ok|[1-5][0-9][0-9])$")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(us|ms|s|m)?$")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, None: 1.0}
MAX_LIMIT = 500
_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError([FieldError(message, field)])


def parse_ms(text: str, field: str) -> float:
    """``250ms``, ``1.5s``, ``2m``, ``300`` (ms) -> milliseconds."""
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise _invalid(field, f"{text[:40]!r}: write a duration such as 100ms, 1.5s or 2m")
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


def trace_filter(
    since_minute: int,
    *,
    service: str | None = None,
    status: str | None = None,
    min_duration_ms: float | None = None,
    request_id: str | None = None,
    limit: int = 20,
) -> TraceFilter:
    """A ``TraceFilter`` from query parameters, each refused with its field named."""
    if status is not None and not _STATUS.fullmatch(status):
        raise _invalid("status", f"{status[:40]!r}: use 5xx, 4xx, error, ok or a code (503)")
    if min_duration_ms is not None and not 0 <= min_duration_ms <= 86_400_000:
        raise _invalid("minDurationMs", f"{min_duration_ms}: give 0..86400000 milliseconds")
    if not 1 <= limit <= MAX_LIMIT:
        raise _invalid("limit", f"{limit}: give 1..{MAX_LIMIT}")
    return TraceFilter(
        since_minute=since_minute,
        service=service or None,
        status=status,
        min_duration_ms=min_duration_ms,
        request_id=request_id or None,
        limit=limit,
    )


def check_trace_id(trace_id: str) -> str:
    text = trace_id.strip().lower()
    if not _TRACE_ID.fullmatch(text):
        raise _invalid("traceId", f"{trace_id[:40]!r}: a trace id is 32 hex digits")
    return text


def ordered(spans: list[Span]) -> list[tuple[Span, int]]:
    """Spans depth-first from the roots (a span whose parent is missing is a root), each
    with its depth; siblings by start."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    for s in sorted(spans, key=lambda s: (s.start_ns, s.span_id)):
        if s.parent_id and s.parent_id in ids and s.parent_id != s.span_id:
            children.setdefault(s.parent_id, []).append(s)
        else:
            roots.append(s)
    out: list[tuple[Span, int]] = []
    seen: set[str] = set()
    stack = [(r, 0) for r in reversed(roots)]
    while stack:
        span, depth = stack.pop()
        if span.span_id in seen:  # a repeated id (a retried export) is shown once
            continue
        seen.add(span.span_id)
        out.append((span, depth))
        stack.extend((c, depth + 1) for c in reversed(children.get(span.span_id, [])))
    return out


def summary(spans: list[Span]) -> dict[str, Any]:
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    root = ordered(spans)[0][0]
    request_id = root.request_id or next((s.request_id for s in spans if s.request_id), "")
    return {
        "traceId": root.trace_id,
        "start": start / 1e9,
        "durationMs": round((end - start) / 1e6, 3),
        "rootService": root.service,
        "rootName": root.name,
        "services": sorted({s.service for s in spans}),
        "spans": len(spans),
        "status": root.status,
        "error": any(s.error for s in spans),
        "requestId": request_id,
    }


def trace_json(spans: list[Span]) -> dict[str, Any]:
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    return {
        "traceId": spans[0].trace_id,
        "start": start / 1e9,
        "durationMs": round((end - start) / 1e6, 3),
        "spans": [
            {
                "spanId": s.span_id,
                "parentSpanId": s.parent_id or None,
                "depth": depth,
                "service": s.service,
                "name": s.name,
                "kind": _KINDS.get(s.kind, "unspecified"),
                "startMs": round((s.start_ns - start) / 1e6, 3),
                "durationMs": round(s.duration_ns / 1e6, 3),
                "status": s.status,
                "error": s.error,
                "requestId": s.request_id,
                "attributes": s.attributes,
            }
            for s, depth in ordered(spans)
        ],
    }
