"""``gossamer telemetry serve``: the telemetry service (docs/telemetry.md)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gossamer.cli.common import reporting_errors
from gossamer.cli.logs import setup_logging
from gossamer.errors import ConfigError, ValidationError
from gossamer.ports import parse_host_port
from gossamer.telemetry.query import parse_window
from gossamer.telemetry.traces_query import parse_ms

if TYPE_CHECKING:  # (imported when the service runs: every other command starts faster)
    from gossamer.telemetry.serve import ServeSettings

app = typer.Typer(
    name="telemetry",
    help="The telemetry service: Envoy's access logs in, topology and RED metrics out.",
    no_args_is_help=True,
)


async def _run(settings: ServeSettings) -> None:
    from gossamer.telemetry.serve import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def listening(grpc_at: tuple[str, int], http_at: tuple[str, int]) -> None:
        print(
            f"gossamer telemetry: access logs on {grpc_at[0]}:{grpc_at[1]}  "
            f"API on http://{http_at[0]}:{http_at[1]}  data {settings.data}",
            flush=True,
        )

    await serve(settings, stop, listening)


@app.command("serve")
def serve_command(
    listen: Annotated[
        str,
        typer.Option("--listen", help="gRPC (access logs) for Envoys (HOST:PORT; 0: a free port)"),
    ] = "127.0.0.1:8083",
    http: Annotated[
        str, typer.Option("--http", help="the query API (HOST:PORT; 0: a free port)")
    ] = "127.0.0.1:8084",
    data: Annotated[
        Path, typer.Option("--data", help="the SQLite file of minute aggregates")
    ] = Path("telemetry.sqlite"),
    retention: Annotated[
        str, typer.Option("--retention", help="keep minutes this long (e.g. 24h, 7d)")
    ] = "24h",
    max_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-bytes", help="disk cap of --data: the oldest minutes go first (default 1 GiB)"
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="the bearer token the query API requires"),
    ] = None,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth", help="serve the query API without a token (loopback --http only)"
        ),
    ] = False,
    flush_interval: Annotated[
        float, typer.Option("--flush-interval", help="seconds between writes of closed minutes")
    ] = 5.0,
    trace_keep: Annotated[
        float,
        typer.Option("--trace-keep", help="fraction kept of traces neither failed nor slow"),
    ] = 0.1,
    trace_slow: Annotated[
        str,
        typer.Option("--trace-slow", help="traces this slow are kept (e.g. 500ms; auto: p99)"),
    ] = "auto",
    trace_decision_wait: Annotated[
        float,
        typer.Option("--trace-decision-wait", help="seconds a trace waits for its last spans"),
    ] = 10.0,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            "--otlp-endpoint",
            help="export kept spans and minute aggregates to this OTLP/gRPC collector (HOST:PORT)",
        ),
    ] = None,
    otlp_insecure: Annotated[
        bool, typer.Option("--otlp-insecure", help="plaintext to the collector (else TLS)")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Receive Envoy's access logs (envoy.service.accesslog.v3) and answer queries."""
    setup_logging(logging.DEBUG if verbose else logging.INFO)
    with reporting_errors():
        try:
            retention_s = parse_window(retention, "--retention", max_s=3650 * 86400)
        except ValidationError as e:
            raise ConfigError(str(e)) from None
        from gossamer.telemetry.serve import DEFAULT_MAX_BYTES, ServeSettings

        settings = ServeSettings(
            listen=parse_host_port(listen, "--listen"),
            http=parse_host_port(http, "--http"),
            data=data,
            retention_s=float(retention_s),
            max_bytes=DEFAULT_MAX_BYTES if max_bytes is None else max_bytes,
            token_file=token_file,
            insecure_no_auth=insecure_no_auth,
            flush_interval_s=flush_interval,
            trace_keep=trace_keep,
            trace_slow_ms=None if trace_slow == "auto" else parse_ms(trace_slow, "--trace-slow"),
            trace_decision_s=trace_decision_wait,
            otlp_endpoint=otlp_endpoint,
            otlp_insecure=otlp_insecure,
        )
        settings.check()
        asyncio.run(_run(settings))
