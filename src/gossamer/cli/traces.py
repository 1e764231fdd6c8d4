"""``gossamer traces`` (search) and ``gossamer trace ID`` (a waterfall), docs/telemetry.md.

Both read the control plane's ``GET /v1/traces`` and ``/v1/traces/{id}`` (forwarded to
its telemetry service), or a telemetry service's own (``--server`` at its ``--http``,
``--token`` its token): the same JSON. ``traces_table`` and ``waterfall`` are pure
functions of that JSON, so what is drawn is tested without I/O.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import Server, Token, reporting_errors, stdout
from gossamer.cli.output import Output, OutputOption, emit
from gossamer.telemetry.query import parse_window
from gossamer.telemetry.traces_query import check_trace_id, parse_ms, trace_filter

#: the waterfall's bar width in characters
BAR_WIDTH = 40


def _status(status: object, error: object) -> Text:
    text = str(status) if status else ("error" if error else "-")
    return Text(text, style="red" if error else "green")


def _ms(value: object) -> str:
    return f"{float(value):.1f}ms" if isinstance(value, int | float) else "-"


def traces_table(found: list[dict[str, Any]]) -> Table:
    """One row per trace summary, newest first (as the API gives them)."""
    table = Table(box=None, header_style="bold")
    for column in ("TRACE", "START", "DURATION", "ROOT", "SERVICES", "SPANS", "STATUS", "REQUEST"):
        table.add_column(column, no_wrap=column in ("TRACE", "START", "DURATION", "STATUS"))
    for t in found:
        start = datetime.datetime.fromtimestamp(float(t["start"]), datetime.UTC)
        table.add_row(
            str(t["traceId"]),
            start.strftime("%H:%M:%S.%f")[:-3],
            _ms(t.get("durationMs")),
            f"{t.get('rootService', '')} {t.get('rootName', '')}".strip(),
            ", ".join(t.get("services") or []),
            str(t.get("spans", "")),
            _status(t.get("status"), t.get("error")),
            str(t.get("requestId") or ""),
        )
    return table


def _bar(start_ms: float, duration_ms: float, total_ms: float, width: int, error: bool) -> Text:
    """A bar placed at the span's start, as long as its share of the trace (at least 1)."""
    scale = width / total_ms if total_ms > 0 else 0.0
    offset = min(width - 1, int(start_ms * scale))
    length = max(1, min(width - offset, round(duration_ms * scale)))
    bar = Text(" " * offset)
    bar.append("█" * length, style="red" if error else "cyan")
    bar.append(" " * (width - offset - length))
    return bar


def waterfall(trace: dict[str, Any], width: int = BAR_WIDTH) -> Table:
    """The spans of one trace in parent order, indented by depth, each with a bar from its
    start for its duration on the trace's time line."""
    total = float(trace.get("durationMs") or 0.0)
    table = Table(
        box=None,
        header_style="bold",
        title=f"trace {trace['traceId']}  {_ms(total)}",
        title_justify="left",
    )
    for column in ("OPERATION", "SERVICE", "KIND", "STATUS", "START", "DURATION", "TIMELINE"):
        table.add_column(column, no_wrap=True)
    for s in trace["spans"]:
        start, duration = float(s["startMs"]), float(s["durationMs"])
        table.add_row(
            "  " * int(s.get("depth", 0)) + str(s["name"]),
            str(s["service"]),
            str(s.get("kind", "")),
            _status(s.get("status"), s.get("error")),
            f"+{start:.1f}ms",
            _ms(duration),
            _bar(start, duration, total, width, bool(s.get("error"))),
        )
    return table


def traces(
    service: Annotated[str | None, typer.Option("--service", help="NS/NAME in the trace")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="5xx, 4xx, error, ok or a code (503)")
    ] = None,
    min_duration: Annotated[
        str | None, typer.Option("--min-duration", help="at least this long (100ms, 1.5s)")
    ] = None,
    since: Annotated[str, typer.Option("--since", help="started in this window (15m)")] = "15m",
    request_id: Annotated[str | None, typer.Option("--request-id", help="x-request-id")] = None,
    limit: Annotated[int, typer.Option("--limit", help="at most this many, newest first")] = 20,
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Search the stored traces (docs/telemetry.md, "Traces")."""
    with reporting_errors():
        parse_window(since, "--since")
        min_ms = parse_ms(min_duration, "--min-duration") if min_duration else None
        trace_filter(0, status=status, min_duration_ms=min_ms, limit=limit)  # checked here
        params = {"since": since, "limit": str(limit)}
        for key, value in (
            ("service", service),
            ("status", status),
            ("requestId", request_id),
            ("minDurationMs", None if min_ms is None else f"{min_ms:g}"),
        ):
            if value:
                params[key] = value
        with ApiClient(server, token=token) as api:
            found = api._dict("GET", "/v1/traces", params=params)["traces"]

        def table() -> None:
            if not found:
                stdout().print(
                    "no stored trace matches; tracing is off until Mesh.spec.tracing.sampling "
                    "is above 0 (docs/telemetry.md, 'Sampling' and 'What is kept')"
                )
            else:
                stdout().print(traces_table(found))

        emit(output, found, table)


def trace(
    trace_id: Annotated[str, typer.Argument(help="the trace id (32 hex digits)")],
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """One trace's spans as a waterfall: parents before children, bars on its time line."""
    with reporting_errors():
        wanted = check_trace_id(trace_id)
        with ApiClient(server, token=token) as api:
            found = api._dict("GET", f"/v1/traces/{wanted}")
        emit(output, found, lambda: stdout().print(waterfall(found), soft_wrap=False))


def register(app: typer.Typer) -> None:
    app.command("traces")(traces)
    app.command("trace")(trace)
