"""``gossamer describe service NAME``, ``describe route NAME`` and ``describe mesh``: what to
run when traffic does something unexpected. The control plane assembles it (``GET
/v1/describe/...``); this prints it as text, or as the API's JSON/YAML with ``-o``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Group

from gossamer.cli import describe_render
from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import Server, Token, reporting_errors, stdout
from gossamer.cli.output import Output, OutputOption, emit
from gossamer.types import DEFAULT_NAMESPACE

app = typer.Typer(
    help="Everything that shapes traffic to a service, or one Route's rules, and which "
    "proxies have it.",
    no_args_is_help=True,
)


Name = Annotated[str, typer.Argument(help="NAME or NAMESPACE/NAME")]
Namespace = Annotated[str, typer.Option("-n", "--namespace", help="the namespace of NAME")]


def _split(name: str, namespace: str) -> tuple[str, str]:
    ns, _, bare = name.rpartition("/")
    return ns or namespace, bare


def _print(body: dict[str, Any], output: Output, view: Callable[[dict[str, Any]], Group]) -> None:
    emit(output, body, lambda: stdout().print(view(body)))


@app.command("service")
def service(
    name: Name,
    namespace: Namespace = DEFAULT_NAMESPACE,
    output: OutputOption = Output.table,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.1, max=60, help="seconds the proxies' hosts have to send stats"
        ),
    ] = 5.0,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """The service (ports, mTLS), its workloads, every Route and TrafficPolicy that applies
    (rules in evaluation order), which callers' proxies have that config ACKed, and the
    response flags their Envoys counted for it, explained."""
    with reporting_errors(), ApiClient(server, token=token) as api:
        ns, bare = _split(name, namespace)
        body = api.describe("services", ns, bare, wait=timeout)
        _print(body, output, describe_render.service_view)


@app.command("route")
def route(
    name: Name,
    namespace: Namespace = DEFAULT_NAMESPACE,
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """A Route's rules in evaluation order (matches, then what each does) and which
    proxies have them ACKed."""
    with reporting_errors(), ApiClient(server, token=token) as api:
        ns, bare = _split(name, namespace)
        body = api.describe("routes", ns, bare)
        _print(body, output, describe_render.route_view)


@app.command("mesh")
def mesh(
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """The Mesh's trust domain and modes, and per end-user (JWT) issuer where its keys come
    from; for a jwks.uri the keys the proxies have, the last successful fetch, and since
    when fetches fail with the last error."""
    with reporting_errors(), ApiClient(server, token=token) as api:
        _print(api.describe_mesh(), output, describe_render.mesh_view)
