"""``proxy-status`` and ``proxy-config``: what the control plane knows about its proxies."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from gossamer.cli import render
from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import Server, Token, reporting_errors, stderr, stdout
from gossamer.cli.output import Output, OutputOption, emit
from gossamer.cli.version import envoy_warnings
from gossamer.errors import GossamerError, NotFoundError


class ConfigOutput(StrEnum):
    json = "json"
    yaml = "yaml"


class ConfigType(StrEnum):
    clusters = "clusters"
    listeners = "listeners"
    routes = "routes"
    endpoints = "endpoints"


def proxy_status(
    output: OutputOption = Output.table,
    summary: Annotated[
        bool,
        typer.Option(
            "--summary",
            help="one block instead: proxies connected/in sync/out of sync/NACKing, "
            "responses in flight (queue depth), push latency p50/p99 per type",
        ),
    ] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Every proxy: kind, host, state, versions sent/acked per type, the certificate and
    trust bundle its Envoy ACKed over SDS, last NACK, last seen. With ``--summary``, the
    figures of the control plane's ``/metrics`` about all of them (docs/xds.md, "Metrics")."""
    with reporting_errors(), ApiClient(server, token=token) as api:
        if summary:
            figures = api.proxy_summary()
            emit(output, figures, lambda: stdout().print(summary_block(figures)))
            return
        proxies = with_hosts(api.proxies(), api)

        def table() -> None:
            if not proxies:
                stdout().print("no proxies have connected yet")
                return
            stdout().print(render.proxy_table(proxies))
            for line in envoy_warnings(proxies, _expected_envoy(api)):
                stderr().print(Text(line, style="yellow"))

        emit(output, proxies, table)


def _seconds(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def summary_block(figures: dict[str, Any]) -> Group:
    """``proxy-status --summary`` for people: two lines, then push latency per type."""
    f = figures
    head = Text(
        f"proxies: {f.get('connected', 0)} connected, {f.get('inSync', 0)} in sync, "
        f"{f.get('outOfSync', 0)} out of sync, {f.get('nacking', 0)} NACKing\n"
        f"queue depth: {f.get('queueDepth', 0)} responses sent, not yet ACKed\n"
        "push latency, change seen -> ACKed, since the control plane started:"
    )
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in ("TYPE", "CHANGES", "P50", "P99"):
        table.add_column(header, justify="left" if header == "TYPE" else "right")
    for row in f.get("latency", []):
        table.add_row(
            str(row.get("type")),
            str(row.get("count", 0)),
            _seconds(row.get("p50Seconds")),
            _seconds(row.get("p99Seconds")),
        )
    return Group(head, table)


def _expected_envoy(api: ApiClient) -> str | None:
    """The Envoy release the control plane expects; None if it does not say (an older one,
    or a token that may not ask)."""
    try:
        return str(api.version()["envoy"])
    except GossamerError:
        return None


def with_hosts(proxies: list[dict[str, Any]], api: ApiClient) -> list[dict[str, Any]]:
    """Each sidecar whose Envoy announced no host gets its Workload's ``spec.host`` (else
    its address): the host it serves, as ``get workloads`` shows it."""
    if all(p.get("host") or p.get("kind") != "sidecar" for p in proxies):
        return proxies
    try:
        _, workloads = api.list_resources("Workload")
    except GossamerError:
        return proxies
    hosts: dict[tuple[str, str], str] = {}
    for w in workloads:
        meta, spec = w.get("metadata") or {}, w.get("spec") or {}
        where = spec.get("host") or spec.get("address")
        if where:
            hosts[(str(meta.get("namespace", "default")), str(meta.get("name")))] = str(where)
    return [
        p
        if p.get("host") or p.get("kind") != "sidecar"
        else {**p, "host": hosts.get((str(p.get("namespace")), str(p.get("name"))))}
        for p in proxies
    ]


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
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.1, max=60, help="seconds the proxy's host has to answer"),
    ] = 10.0,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Envoy's own config dump of one proxy, read from its admin API by the agent or
    gateway host that runs it (the control plane never connects to a proxy itself)."""
    with reporting_errors(), ApiClient(server, token=token) as api:
        node_id = proxy if "~" in proxy else find_proxy(api.proxies(), proxy)
        dump = api.proxy_config(node_id, type_.value if type_ else None, wait=timeout)
        if output is ConfigOutput.yaml:
            typer.echo(render.to_yaml(dump), nl=False)
        else:
            typer.echo(render.to_json(dump))


def register(app: typer.Typer) -> None:
    app.command("proxy-status")(proxy_status)
    app.command("proxy-config")(proxy_config)
