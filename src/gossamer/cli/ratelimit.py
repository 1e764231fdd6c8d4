"""``gossamer ratelimit serve``: the global rate-limit service (docs/traffic.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gossamer.cli.serving import ApiSource, CaFile, Listen, Token, Verbose, run_service
from gossamer.errors import ConfigError
from gossamer.ports import parse_host_port

if TYPE_CHECKING:  # (imported when the service runs: every other command starts faster)
    from gossamer.ratelimit.decision import FailureMode
    from gossamer.ratelimit.serve import ServeSettings

#: ``--server``: one control plane, or its replicas (the rules' long poll moves between them)
Servers = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="GOSSAMER_SERVER",
        help="the control plane's API (several replicas comma-separated: a poll that fails "
        "moves on to the next)",
    ),
]

app = typer.Typer(
    name="ratelimit",
    help="The global rate-limit service Envoy asks (envoy.service.ratelimit.v3).",
    no_args_is_help=True,
)


@app.command("serve")
def serve_command(
    listen: Listen = "127.0.0.1:8081",
    redis: Annotated[
        str | None,
        typer.Option(
            "--redis",
            help="count in Redis (redis://HOST:PORT/DB), shared by every service using it; "
            "default: in this process's memory",
        ),
    ] = None,
    redis_timeout: Annotated[
        float, typer.Option("--redis-timeout", help="seconds one Redis round trip may take")
    ] = 0.05,
    failure_mode: Annotated[
        str | None,
        typer.Option(
            "--failure-mode",
            help="when Redis does not answer: open (let requests through) or closed "
            "(refuse them); default: the Mesh's rateLimit.failureMode",
        ),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="read the rules from this file instead of --server"),
    ] = None,
    server: Servers = None,
    token: Token = None,
    ca_file: CaFile = None,
    verbose: Verbose = False,
) -> None:
    """Answer Envoy's rate-limit checks for the Routes' global limits."""

    from gossamer.ratelimit.serve import ServeSettings, serve

    def settings() -> ServeSettings:
        if failure_mode not in (None, "open", "closed"):
            raise ConfigError(f"--failure-mode: {failure_mode!r}; use open or closed")
        mode: FailureMode | None = "closed" if failure_mode == "closed" else None
        if failure_mode == "open":
            mode = "open"
        source = ApiSource.of(server, token, ca_file)
        return ServeSettings(
            listen=parse_host_port(listen, "--listen"),
            redis=redis,
            redis_timeout=redis_timeout,
            failure_mode=mode,
            rules_file=rules,
            server=source.server,
            token=source.token,
            ca_file=source.ca_file,
        )

    def announce(host: str, port: int) -> str:
        counters = f"Redis {redis}" if redis else "memory"
        return (
            f"gossamer ratelimit: listening on {host}:{port}  counters {counters}  "
            f"rules {server or rules}"
        )

    run_service(settings, serve, announce, verbose=verbose)
