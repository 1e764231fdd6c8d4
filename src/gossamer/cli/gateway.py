"""``gossamer gateway``: run an ingress gateway Envoy for one ``Gateway`` resource."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.text import Text

from gossamer.agent.trust import CA_FILE_ENV
from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import check_server, reporting_errors, stderr
from gossamer.cli.logs import setup_logging
from gossamer.errors import ApiError, ConfigError, UnreachableError
from gossamer.ports import Address, parse_host_port, parse_host_ports
from gossamer.types import DEFAULT_NAMESPACE

#: the control plane's default xDS port (``gossamer control-plane --xds-addr``)
DEFAULT_XDS_PORT = 18000


def xds_address(server: str, xds_addr: str | None) -> tuple[Address, ...]:
    """``--xds-addr`` if given (one HOST:PORT or several, comma-separated: the control
    plane's replicas), else the plaintext address the control plane names
    (``GET /xds-addresses``), else, with one warning line, its host on the default port.
    (A gateway holding a credential dials the mTLS address it learnt at join instead.)"""
    if xds_addr is not None:
        return parse_host_ports(xds_addr, "--xds-addr")
    host = urlsplit(server).hostname
    if not host:
        raise ConfigError(f"--server {server!r} names no host; give --xds-addr HOST:PORT")
    from gossamer.agent.connect import reachable

    fallback = f"{host}:{DEFAULT_XDS_PORT}"
    try:
        with ApiClient(server) as api:
            found = api.xds_addresses()
    except (UnreachableError, ApiError) as e:
        _warn(
            f"warning: could not ask the control plane at {server} where it serves xDS "
            f"({str(e).splitlines()[0]}); Envoy dials {fallback} (give --xds-addr HOST:PORT)"
        )
        return ((host, DEFAULT_XDS_PORT),)
    plain = [a for a in found.get("xdsAddresses") or [] if isinstance(a, str) and a]
    if plain:
        return (parse_host_port(reachable(plain[0], server), f"xdsAddresses of {server}"),)
    tls = ", ".join(str(a) for a in found.get("xdsTlsAddresses") or []) or "none"
    _warn(
        f"warning: the control plane at {server} serves no plaintext xDS (mTLS: {tls}); "
        "a gateway without a credential gets no config there: give it --token and "
        f"--state-dir (docs/gateway.md). Envoy dials {fallback}"
    )
    return ((host, DEFAULT_XDS_PORT),)


def _check_servers(text: str) -> str:
    return ",".join(check_server(url.strip()) for url in text.split(","))


#: ``--server``: the control plane, or its replicas (comma-separated)
Servers = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="GOSSAMER_SERVER",
        callback=_check_servers,
        help="the control plane's API (several replicas comma-separated: with --token the "
        "gateway joins through the first and its later calls move on to the next when one "
        "does not answer)",
        show_default=True,
    ),
]


def _warn(line: str) -> None:
    stderr().print(Text(line, style="yellow"))


def preflight(server: str, namespace: str, name: str) -> None:
    """Say what the gateway will wait for; a Gateway whose port is taken is an error."""
    from gossamer.ports import require_free

    warn = stderr()
    try:
        with ApiClient(server) as api:
            gateway = api.get("Gateway", namespace, name)
    except UnreachableError:
        warn.print(
            Text(
                f"warning: the control plane at {server} does not answer; Envoy "
                "keeps trying its xDS address",
                style="yellow",
            )
        )
        return
    except ApiError as e:
        if e.status in (401, 403):  # the operator token (GOSSAMER_TOKEN) is for this check only
            warn.print(
                Text(
                    f"warning: cannot read Gateway {namespace}/{name} to check its port "
                    f"({e}); Envoy waits for it over xDS",
                    style="yellow",
                )
            )
            return
        if e.status != 404:
            raise
        warn.print(
            Text(
                f"warning: there is no Gateway {namespace}/{name} yet; Envoy waits "
                "for it (create it with `gossamer apply -f`)",
                style="yellow",
            )
        )
        return
    spec = gateway.get("spec", {})
    address, port = str(spec.get("address", "127.0.0.1")), int(spec.get("port", 0))
    if port:
        require_free(address, port, f"Gateway {namespace}/{name} (its spec.port)")


def register(app: typer.Typer) -> None:
    @app.command("gateway")
    def gateway(
        name: Annotated[str, typer.Option("--name", help="the Gateway resource to serve")],
        server: Servers = DEFAULT_SERVER,
        namespace: Annotated[
            str, typer.Option("--namespace", "-n", help="the Gateway's namespace")
        ] = DEFAULT_NAMESPACE,
        xds_addr: Annotated[
            str | None,
            typer.Option(
                "--xds-addr",
                help="the control plane's plaintext xDS (HOST:PORT, or several "
                "comma-separated: its replicas); default: the "
                "address it names (GET /xds-addresses), else the --server host, port "
                f"{DEFAULT_XDS_PORT}; a gateway with a credential uses the mTLS address "
                "learnt at join",
            ),
        ] = None,
        admin_addr: Annotated[
            str,
            typer.Option(
                "--admin-addr",
                help="Envoy's admin API, on loopback (HOST:PORT; port 0 picks a free one)",
            ),
        ] = "127.0.0.1:0",
        workdir: Annotated[
            Path | None,
            typer.Option(
                "--workdir",
                help="keep the bootstrap and Envoy's log here "
                "(default: a temporary directory removed at exit)",
            ),
        ] = None,
        drain: Annotated[
            float,
            typer.Option("--drain-seconds", help="how long SIGTERM lets open connections finish"),
        ] = 5.0,
        concurrency: Annotated[int, typer.Option("--concurrency", help="Envoy worker threads")] = 2,
        delta: Annotated[bool, typer.Option("--delta", help="use delta xDS")] = False,
        envoy: Annotated[
            str | None,
            typer.Option("--envoy", help="the envoy binary (default: the installed one)"),
        ] = None,
        log_level: Annotated[
            str, typer.Option("--log-level", help="Envoy's log level (its log file)")
        ] = "info",
        join_token: Annotated[
            str | None,
            typer.Option(
                "--token",
                envvar="GOSSAMER_JOIN_TOKEN",
                help="a join token from `gossamer token create --gateway NS/NAME`, used "
                "once (needs --state-dir): the gateway then holds a credential and its own "
                "mesh identity",
            ),
        ] = None,
        state_dir: Annotated[
            Path | None,
            typer.Option(
                "--state-dir",
                help="where the gateway keeps its credential, key and certificate (0600); "
                "later starts use the kept credential",
            ),
        ] = None,
        host: Annotated[
            str | None,
            typer.Option(
                "--host",
                help="the host name it joins as (default: gw-NAME-<this machine's name>)",
            ),
        ] = None,
        xds_tls_addr: Annotated[
            str | None,
            typer.Option(
                "--xds-tls-addr",
                help="with a credential: the control plane's mTLS xDS (HOST:PORT, or several "
                "comma-separated: its replicas) instead "
                "of the address it advertised at join (--xds-addr is for a gateway "
                "without a credential)",
            ),
        ] = None,
        ca_file: Annotated[
            Path | None,
            typer.Option(
                "--ca-file",
                envvar=CA_FILE_ENV,
                help="with --token: verify the control plane against these roots (PEM) "
                "instead of the token's CA fingerprint",
            ),
        ] = None,
    ) -> None:
        """Run an Envoy ingress gateway configured by the Gateway NAME and its Routes.

        Access logs (one JSON object per request) go to stdout; messages and Envoy's
        warnings to stderr. SIGTERM or Ctrl-C drains open connections, then stops.
        With --token/--state-dir the gateway has a mesh identity and calls services over
        mTLS (docs/security.md, "Gateway identity")."""
        from gossamer.gateway.host import default_host
        from gossamer.gateway.serve import Joining, main
        from gossamer.gateway.settings import GatewaySettings

        setup_logging()
        with reporting_errors():
            if join_token is not None and state_dir is None:
                raise ConfigError(
                    "--token needs --state-dir: the gateway keeps the credential it joins "
                    "for there (a join token is used once)"
                )
            first = server.split(",")[0]  # (asked where xDS is, and whether the port is free)
            xds = xds_address(first, xds_addr)
            settings = GatewaySettings(
                name=name,
                namespace=namespace,
                xds_addrs=xds,
                admin_addr=parse_host_port(admin_addr, "--admin-addr"),
                workdir=workdir or state_dir or Path("."),
                delta=delta,
                drain_seconds=drain,
                concurrency=concurrency,
                log_level=log_level,
                envoy=envoy,
            )
            joining = None
            if state_dir is not None:
                joining = Joining(
                    state_dir,
                    join_token,
                    server,
                    host or default_host(namespace, name),
                    None
                    if xds_tls_addr is None
                    else parse_host_ports(xds_tls_addr, "--xds-tls-addr"),
                    ca_file,
                )
            preflight(first, namespace, name)
            main(
                settings, keep_workdir=workdir is not None or state_dir is not None, joining=joining
            )
