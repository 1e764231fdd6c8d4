"""``gossamer authz serve``: the NGAC decision point Envoy's ``ext_authz`` asks about end
users (docs/ngac.md, "End users")."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gossamer.cli.serving import ApiSource, CaFile, Listen, Server, Verbose, run_service
from gossamer.ports import parse_host_port

if TYPE_CHECKING:  # (imported when the service runs: every other command starts faster)
    from gossamer.decisionpoint.serve import ServeSettings


def serve_command(
    listen: Listen = "127.0.0.1:8082",
    graph: Annotated[
        Path | None,
        typer.Option("--graph", help="decide on this graph document instead of --server's"),
    ] = None,
    server: Server = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="GOSSAMER_TOKEN",
            help="for --server: a decision point's token (`token create --decision-point`)",
        ),
    ] = None,
    ca_file: CaFile = None,
    decisions_log: Annotated[
        Path | None,
        typer.Option(
            "--decisions-log",
            help="with --graph: append each decision here as a JSON line (default: stdout)",
        ),
    ] = None,
    reuse_port: Annotated[
        bool,
        typer.Option(
            "--reuse-port",
            help="let several authz serve processes listen on the same --listen "
            "(SO_REUSEPORT: the kernel spreads connections over them)",
        ),
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Answer Envoy's ext_authz checks (envoy.service.auth.v3) on the NGAC graph."""

    from gossamer.decisionpoint.serve import ServeSettings, serve

    def settings() -> ServeSettings:
        source = ApiSource.of(server, token, ca_file)
        return ServeSettings(
            listen=parse_host_port(listen, "--listen"),
            graph_file=graph,
            server=source.server,
            token=source.token,
            ca_file=source.ca_file,
            decisions_log=decisions_log,
            reuse_port=reuse_port,
        )

    def announce(host: str, port: int) -> str:
        return f"gossamer authz: deciding on {host}:{port}  graph {server or graph}"

    run_service(settings, serve, announce, verbose=verbose)


def install(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
