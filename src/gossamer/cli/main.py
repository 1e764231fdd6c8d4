"""``gossamer``: the command line. Each command group lives in its own module."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from gossamer.agent.trust import CA_FILE_ENV
from gossamer.api.body_limits import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_RESOURCE_BYTES
from gossamer.cli import (
    agent,
    backup,
    ca,
    demo,
    describe,
    gateway,
    proxies,
    ratelimit,
    resources,
    tokens,
)
from gossamer.cli import telemetry as telemetry_cli
from gossamer.cli import top as top_cli
from gossamer.cli import traces as traces_cli
from gossamer.cli import version as version_cli
from gossamer.cli.authz import app as authz_app
from gossamer.cli.common import reporting_errors
from gossamer.cli.help import PlainGroup
from gossamer.cli.logs import setup_logging
from gossamer.errors import ConfigError

app = typer.Typer(
    name="gossamer",
    help="Gossamer: a service mesh for VMs, bare metal and containers, with Envoy as its "
    "data plane.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion, --show-completion (docs/cli.md)
    cls=PlainGroup,
)


def _version(value: bool) -> None:
    if value:
        typer.echo("\n".join(version_cli.version_lines()))
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="print the version, and the Envoy it would run",
        ),
    ] = False,
    ca_file: Annotated[
        str | None,
        typer.Option(
            "--ca-file",
            envvar=CA_FILE_ENV,
            help="verify the control plane's API against these roots (PEM: its "
            "<data-dir>/ca/root-cert.pem) instead of the CA fingerprint in the token",
        ),
    ] = None,
) -> None:
    """Gossamer: a service mesh for VMs, bare metal and containers, with Envoy as its data
    plane."""
    if ca_file:  # every API client of this command reads it from there
        os.environ[CA_FILE_ENV] = ca_file


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
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="where resources are kept: SQLite in --data-dir (the default), 'memory:', "
            "or etcd://HOST:2379,HOST:2379.../PREFIX (more members and a key prefix are "
            "optional; docs/store.md, 'etcd')",
        ),
    ] = None,
    store_loss_grace: Annotated[
        float,
        typer.Option(
            "--store-loss-grace",
            help="etcd store: seconds etcd may not answer before this replica closes its xDS "
            "streams so Envoys move to another replica (writes are refused at once; "
            "docs/store.md, 'When etcd is lost')",
        ),
    ] = 10.0,
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
            help="required (the default): mTLS only, on --xds-addr, anonymous clients get "
            "nothing; optional: plaintext on --xds-addr and mTLS on --xds-tls-addr (for "
            "Envoys without a certificate, e.g. a gateway without --token); off: plaintext "
            "only (docs/security.md, 'xDS')",
        ),
    ] = "required",
    xds_tls_addr: Annotated[
        str | None,
        typer.Option(
            "--xds-tls-addr",
            callback=lambda v: None if v is None else _host_port(v),
            help="xDS over mTLS in optional mode (HOST:PORT; default: --xds-addr's host on a "
            "free port, logged and advertised to hosts at join)",
        ),
    ] = None,
    api_tls: Annotated[
        str,
        typer.Option(
            "--api-tls",
            help="on: the REST API serves HTTPS with a certificate from the mesh CA; off: "
            "plaintext, only on a loopback --api-addr",
        ),
    ] = "on",
    insecure_listen: Annotated[
        bool,
        typer.Option(
            "--insecure-listen",
            help="allow a non-loopback --xds-addr served in plaintext (--xds-tls off or "
            "optional: anyone who reaches it can read any proxy's configuration)",
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
    ratelimit: Annotated[
        str,
        typer.Option(
            "--ratelimit",
            help="the global rate-limit service: auto (a supervised child while some Route "
            "has a global limit), off, or HOST:PORT of one running elsewhere (docs/traffic.md)",
        ),
    ] = "auto",
    ratelimit_listen: Annotated[
        str | None,
        typer.Option(
            "--ratelimit-listen",
            callback=lambda v: None if v is None else _host_port(v),
            help="--ratelimit auto: where the child listens (default 127.0.0.1, a free port)",
        ),
    ] = None,
    ratelimit_redis: Annotated[
        str | None,
        typer.Option(
            "--ratelimit-redis", help="--ratelimit auto: the child counts in this Redis URL"
        ),
    ] = None,
    authz_service: Annotated[
        str,
        typer.Option(
            "--authz-service",
            help="the NGAC decision point for end users: auto (a supervised `authz serve` "
            "child while some service decides end users), off (their requests with a token "
            "are denied), or HOST:PORT of one running elsewhere (docs/ngac.md)",
        ),
    ] = "auto",
    authz_listen: Annotated[
        str | None,
        typer.Option(
            "--authz-listen",
            callback=lambda v: None if v is None else _host_port(v),
            help="--authz-service auto: where the child listens (default 127.0.0.1, a free port)",
        ),
    ] = None,
    telemetry: Annotated[
        str,
        typer.Option(
            "--telemetry",
            help="the telemetry service every proxy logs its requests to: auto (a supervised "
            "`telemetry serve` child), off (no access logs), or HOST:PORT (gRPC) of one "
            "running elsewhere (docs/telemetry.md)",
        ),
    ] = "auto",
    telemetry_listen: Annotated[
        str | None,
        typer.Option(
            "--telemetry-listen",
            callback=lambda v: None if v is None else _host_port(v),
            help="--telemetry auto: where the child takes access logs (default 127.0.0.1, a "
            "free port)",
        ),
    ] = None,
    telemetry_http: Annotated[
        str | None,
        typer.Option(
            "--telemetry-http",
            callback=lambda v: None if v is None else _host_port(v),
            help="the telemetry query API the control plane's API forwards to: where the "
            "auto child serves it (default 127.0.0.1, a free port), or where the one "
            "elsewhere does",
        ),
    ] = None,
    telemetry_otlp: Annotated[
        str | None,
        typer.Option(
            "--telemetry-otlp",
            help="--telemetry auto: the child exports kept spans and minute aggregates to "
            "this OTLP/gRPC collector (HOST:PORT; TLS unless --telemetry-otlp-insecure)",
        ),
    ] = None,
    telemetry_otlp_insecure: Annotated[
        bool, typer.Option("--telemetry-otlp-insecure", help="plaintext to that collector")
    ] = False,
    telemetry_trace_decision_wait: Annotated[
        float | None,
        typer.Option(
            "--telemetry-trace-decision-wait",
            help="--telemetry auto: seconds a trace waits for its last spans before it is "
            "kept or dropped (the child's default 10)",
        ),
    ] = None,
) -> None:
    """Run the control plane (REST API + xDS) until interrupted."""
    from gossamer.registry.liveness import LivenessSettings
    from gossamer.server.authz_child import AuthzSettings
    from gossamer.server.connection_guard import ApiServerLimits
    from gossamer.server.rate_limit import RateLimitSettings
    from gossamer.server.run import main as run_control_plane
    from gossamer.server.settings import parse_addr
    from gossamer.server.telemetry_child import TelemetrySettings
    from gossamer.xds.auth import xds_tls_mode
    from gossamer.xds.server import Keepalive

    setup_logging()
    with reporting_errors():
        mode = xds_tls_mode(xds_tls)
        if api_tls not in ("on", "off"):
            raise ConfigError(f"--api-tls: {api_tls!r} is not on or off")
        limits = ApiServerLimits(api_header_timeout, api_body_timeout, api_max_connections)
        run_control_plane(
            data_dir,
            api_addr,
            xds_addr,
            store=store,
            store_loss_grace=store_loss_grace,
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
            api_tls=api_tls == "on",
            rate_limit=RateLimitSettings(
                ratelimit,
                parse_addr(ratelimit_listen, "--ratelimit-listen") if ratelimit_listen else None,
                ratelimit_redis,
                insecure_listen,
            ),
            authz_service=AuthzSettings(
                authz_service,
                parse_addr(authz_listen, "--authz-listen") if authz_listen else None,
                insecure_listen,
            ),
            telemetry=TelemetrySettings(
                telemetry,
                parse_addr(telemetry_listen, "--telemetry-listen") if telemetry_listen else None,
                parse_addr(telemetry_http, "--telemetry-http") if telemetry_http else None,
                insecure_listen,
                trace_decision_wait_s=telemetry_trace_decision_wait,
                otlp_endpoint=telemetry_otlp,
                otlp_insecure=telemetry_otlp_insecure,
            ),
        )


resources.register(app)
demo.register(app)
gateway.register(app)
proxies.register(app)
top_cli.register(app)
traces_cli.register(app)
tokens.register(app)
version_cli.register(app)
backup.register(app)
app.add_typer(authz_app, name="authz")
app.add_typer(agent.app, name="agent")
app.add_typer(ca.app, name="ca")
app.add_typer(describe.app, name="describe")
app.add_typer(ratelimit.app, name="ratelimit")
app.add_typer(telemetry_cli.app, name="telemetry")


def run() -> None:
    """The ``gossamer`` console script."""
    app()
