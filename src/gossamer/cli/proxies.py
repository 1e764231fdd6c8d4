"""``proxy-status`` and ``proxy-config``: what the control plane knows about its proxies."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from gossamer.cli import render
from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import Server, Token, reporting_errors, stdout
from gossamer.errors import NotFoundError


class StatusOutput(StrEnum):
    table = "table"
    json = "json"


class ConfigOutput(StrEnum):
    json = "json"
    yaml = "yaml"


class ConfigType(StrEnum):
    clusters = "clusters"
    listeners = "listeners"
    routes = "routes"
    endpoints = "endpoints"


def proxy_status(
    output: Annotated[StatusOutput, typer.Option("-o", "--output")] = StatusOutput.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Every proxy: kind, host, state, versions sent/acked per type, last NACK, last seen."""
    with reporting_errors(), ApiClient(server, token=token) as api:
        proxies = api.proxies()
        if output is StatusOutput.json:
            typer.echo(render.to_json(proxies))
        elif not proxies:
            stdout().print("no proxies have connected yet")
        else:
            stdout().print(render.proxy_table(proxies))


def find_proxy(proxies: list[dict[str, Any]], wanted: str) -> str:
    """The node id of the proxy ``wanted`` names: a node id, NAMESPACE/NAME or a unique NAME."""
    if "~" in wanted:
        return wanted
    ns, _, name = wanted.rpartition("/")
    matches = [p for p in proxies if p.get("name") == name and (not ns or p.get("namespace") == ns)]
    if len(matches) == 1:
        return str(matches[0]["nodeId"])
    if not matches:
        known = ", ".join(f"{p.get('namespace')}/{p.get('name')}" for p in proxies) or "none"
        raise NotFoundError(f"no proxy is named {wanted!r}; known proxies: {known}")
    ids = ", ".join(str(p["nodeId"]) for p in matches)
    raise NotFoundError(
        f"{wanted!r} names several proxies ({ids}): give NAMESPACE/NAME or the node id"
    )


def proxy_config(
    proxy: Annotated[str, typer.Argument(help="NAME, NAMESPACE/NAME or node id")],
    type_: Annotated[
        ConfigType | None, typer.Option("--type", help="only this part of the config")
    ] = None,
    output: Annotated[ConfigOutput, typer.Option("-o", "--output")] = ConfigOutput.json,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Envoy's own config dump of one proxy (read through its admin API)."""
    with reporting_errors(), ApiClient(server, token=token) as api:
        node_id = proxy if "~" in proxy else find_proxy(api.proxies(), proxy)
        dump = api.proxy_config(node_id, type_.value if type_ else None)
        if output is ConfigOutput.yaml:
            typer.echo(render.to_yaml(dump), nl=False)
        else:
            typer.echo(render.to_json(dump))


def register(app: typer.Typer) -> None:
    app.command("proxy-status")(proxy_status)
    app.command("proxy-config")(proxy_config)
