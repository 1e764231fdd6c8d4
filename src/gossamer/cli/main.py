"""``gossamer``: the command line. Each command group lives in its own module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import gossamer
from gossamer.api.limits import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_RESOURCE_BYTES
from gossamer.cli import agent, ca, demo, gateway, proxies, resources, tokens
from gossamer.cli.authz import app as authz_app
from gossamer.cli.common import reporting_errors
from gossamer.cli.logs import setup_logging

app = typer.Typer(
    name="gossamer",
    help="Gossamer: a service mesh for VMs, bare metal and containers, with Envoy as its "
    "data plane.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gossamer {gossamer.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Gossamer: a service mesh for VMs, bare metal and containers, with Envoy as its data
    plane."""


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise typer.BadParameter(f"{value!r} is not HOST:PORT: write e.g. 127.0.0.1:7070")
    return value


@app.command("control-plane")
def control_plane(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="where the store keeps its data")
    ] = Path(".gossamer"),
    api_addr: Annotated[
        str, typer.Option("--api-addr", callback=_host_port, help="REST API (HOST:PORT)")
    ] = "127.0.0.1:7070",
    xds_addr: Annotated[
        str, typer.Option("--xds-addr", callback=_host_port, help="xDS for Envoy (HOST:PORT)")
    ] = "127.0.0.1:18000",
    xds_tls: Annotated[
        str,
        typer.Option(
            "--xds-tls",
            help="off: plaintext xDS on --xds-addr; optional: that and mTLS on --xds-tls-addr "
            "(a migration step); required: mTLS only, anonymous clients get nothing "
            "(docs/security.md, 'xDS')",
        ),
    ] = "optional",
    xds_tls_addr: Annotated[
        str | None,
        typer.Option(
            "--xds-tls-addr",
            callback=lambda v: None if v is None else _host_port(v),
            help="xDS over mTLS for agent-run Envoys (HOST:PORT; default: --xds-addr's port + 1)",
        ),
    ] = None,
    insecure_listen: Annotated[
        bool,
        typer.Option(
            "--insecure-listen",
            help="allow a non-loopback --api-addr/--xds-addr although both are "
            "unauthenticated and plaintext (anyone who reaches them can change the mesh)",
        ),
    ] = False,
    api_header_timeout: Annotated[
        float,
        typer.Option(help="seconds for an API request's headers to arrive, then 408 and close"),
    ] = 10.0,
    api_body_timeout: Annotated[
        float,
        typer.Option(help="seconds for an API request's body to arrive after its headers"),
    ] = 60.0,
    api_max_connections: Annotated[
        int,
        typer.Option(help="open API connections at most (never above half the fd limit)"),
    ] = 1024,
    max_request_bytes: Annotated[
        int,
        typer.Option(min=1, help="refuse an API request body larger than this, before parsing it"),
    ] = DEFAULT_MAX_REQUEST_BYTES,
    max_resource_bytes: Annotated[
        int,
        typer.Option(min=1, help="refuse a resource larger than this as JSON"),
    ] = DEFAULT_MAX_RESOURCE_BYTES,
    heartbeat_interval: Annotated[
        float,
        typer.Option(help="seconds between an agent's heartbeats (agents send every 15 s)"),
    ] = 15.0,
    missed_heartbeats: Annotated[
        int,
        typer.Option(help="heartbeats an agent may miss before its host may be declared dead"),
    ] = 3,
    stream_grace: Annotated[
        float,
        typer.Option(
            help="seconds a host's proxies may have no xDS stream before it may be declared "
            "dead (this and --missed-heartbeats must both hold; docs/agent-protocol.md)"
        ),
    ] = 30.0,
    xds_keepalive: Annotated[
        float, typer.Option(help="seconds between the xDS server's pings to each proxy")
    ] = 10.0,
    xds_keepalive_timeout: Annotated[
        float,
        typer.Option(help="seconds a proxy has to answer a ping before its streams are closed"),
    ] = 5.0,
    forget_proxies_after: Annotated[
        float,
        typer.Option(
            help="seconds a disconnected proxy with no Workload/Gateway stays in proxy-status"
        ),
    ] = 600.0,
    api_host: Annotated[
        list[str] | None,
        typer.Option(
            "--api-host",
            help="a host name the REST API answers to (repeatable); besides these, IP "
            "addresses, localhost and the --api-addr host; any other Host header is refused "
            "(DNS rebinding)",
        ),
    ] = None,
) -> None:
    """Run the control plane (REST API + xDS) until interrupted."""
    from gossamer.registry.liveness import LivenessSettings
    from gossamer.server.http_server import ApiServerLimits
    from gossamer.server.run import main as run_control_plane
    from gossamer.xds.auth import xds_tls_mode
    from gossamer.xds.server import Keepalive

    setup_logging()
    with reporting_errors():
        mode = xds_tls_mode(xds_tls)
        limits = ApiServerLimits(api_header_timeout, api_body_timeout, api_max_connections)
        run_control_plane(
            data_dir,
            api_addr,
            xds_addr,
            insecure_listen=insecure_listen,
            api_limits=limits,
            max_request_bytes=max_request_bytes,
            max_resource_bytes=max_resource_bytes,
            liveness=LivenessSettings(heartbeat_interval, missed_heartbeats, stream_grace),
            xds_keepalive=Keepalive(xds_keepalive, xds_keepalive_timeout),
            forget_proxies_after=forget_proxies_after,
            api_hosts=tuple(api_host or ()),
            xds_tls=mode,
            xds_tls_addr=xds_tls_addr,
        )


resources.register(app)
demo.register(app)
gateway.register(app)
proxies.register(app)
tokens.register(app)
app.add_typer(authz_app, name="authz")
app.add_typer(agent.app, name="agent")
app.add_typer(ca.app, name="ca")


def run() -> None:
    """The ``gossamer`` console script."""
    app()
