"""``gossamer top``: services and edges of the mesh live, busiest first (docs/telemetry.md).

It reads ``GET /v1/topology?since=`` of the control plane (which forwards it to its
telemetry service), or of a telemetry service itself (``--server`` at its ``--http``
address, ``--token`` its token): the same JSON. Rows are made by ``top_view`` and drawn by
``top_tables``, pure functions of that JSON, so what is shown is tested without I/O.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import Server, Token, reporting_errors, stdout
from gossamer.cli.output import Output, OutputOption, emit
from gossamer.errors import ValidationError
from gossamer.telemetry.query import parse_view, parse_window

Row = dict[str, Any]


def _namespace(node: str) -> str | None:
    ns, sep, name = node.partition("/")
    return ns if sep and ns and name and ":" not in ns else None


def _share(part: object, whole: object) -> float:
    if not isinstance(part, int | float) or not isinstance(whole, int | float) or not whole:
        return 0.0
    return round(100.0 * part / whole, 2)


def _row(figures: dict[str, Any]) -> Row:
    n = figures.get("requests") or 0
    latency = figures.get("latencyMs") or {}
    return {
        "rps": figures.get("rps") or 0.0,
        "requests": n,
        "errors4xxPct": _share(figures.get("errors4xx"), n),
        "errors5xxPct": _share(figures.get("errors5xx"), n),
        "p50Ms": latency.get("p50"),
        "p99Ms": latency.get("p99"),
        "mtlsPct": round(100.0 * float(figures.get("mtls") or 0.0), 2),
    }


def top_view(topology: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    """``{"windowSeconds", "services": [...], "edges": [...]}``: each node's figures of
    the requests into it and each edge's, in percent, busiest first (then by name);
    ``namespace`` keeps the nodes in it and the edges that touch it."""

    def kept(*nodes: str) -> bool:
        return namespace is None or any(_namespace(n) == namespace for n in nodes)

    services = [
        {"id": n["id"], "kind": n.get("kind", "service"), **_row(n)}
        for n in topology.get("nodes", [])
        if kept(n["id"])
    ]
    edges = [
        {
            "source": e["source"],
            "destination": e["destination"],
            "view": e.get("view", ""),
            **_row(e),
        }
        for e in topology.get("edges", [])
        if kept(e["source"], e["destination"])
    ]
    services.sort(key=lambda r: (-r["rps"], r["id"]))
    edges.sort(key=lambda r: (-r["rps"], r["source"], r["destination"]))
    return {"windowSeconds": topology.get("windowSeconds"), "services": services, "edges": edges}


def _ms(value: object) -> str:
    return "-" if value is None else f"{value:g}"


def _pct(value: float) -> str:
    return f"{value:.1f}"


def _figures(row: Row) -> list[str]:
    return [
        f"{row['rps']:.3f}",
        _pct(row["errors4xxPct"]),
        _pct(row["errors5xxPct"]),
        _ms(row["p50Ms"]),
        _ms(row["p99Ms"]),
        _pct(row["mtlsPct"]),
        str(row["requests"]),
    ]


_FIGURES = ("RPS", "4XX %", "5XX %", "P50 MS", "P99 MS", "MTLS %", "REQUESTS")


def top_tables(view: dict[str, Any]) -> Group:
    """The services table then the edges table of ``top_view``'s answer."""
    window = view.get("windowSeconds")
    services = Table(title=f"services (last {window} s)", title_justify="left", box=None)
    for name in ("SERVICE", "KIND", *_FIGURES):
        services.add_column(name, justify="right" if name in _FIGURES else "left")
    for row in view["services"]:
        services.add_row(row["id"], row["kind"], *_figures(row))
    edges = Table(title="edges", title_justify="left", box=None)
    for name in ("SOURCE", "DESTINATION", "VIEW", *_FIGURES):
        edges.add_column(name, justify="right" if name in _FIGURES else "left")
    for row in view["edges"]:
        edges.add_row(row["source"], row["destination"], row["view"], *_figures(row))
    return Group(services, "", edges)


def _fetch(api: ApiClient, since: str, view: str) -> dict[str, Any]:
    return api._dict("GET", "/v1/topology", params={"since": since, "view": view})


def top(
    since: Annotated[
        str, typer.Option("--since", help="the window the figures cover (30s, 1m, 5m, 1h)")
    ] = "1m",
    interval: Annotated[
        float, typer.Option("--interval", "-n", min=0.5, help="seconds between refreshes")
    ] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="print once and exit")] = False,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", help="only services in it and edges touching it"),
    ] = None,
    view: Annotated[
        str, typer.Option("--view", help="merged (default), client or server")
    ] = "merged",
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Services and edges live, busiest first: requests per second, 4xx and 5xx apart,
    p50/p99 latency, mTLS share (every request counted; GET /v1/topology)."""
    with reporting_errors(), ApiClient(server, token=token) as api:
        try:
            parse_window(since, "--since")
            parse_view(view)
        except ValidationError as e:
            raise typer.BadParameter(str(e)) from None
        if once or output is not Output.table:
            answer = top_view(_fetch(api, since, view), namespace)
            emit(output, answer, lambda: stdout().print(top_tables(answer)))
            return
        try:
            with Live(console=stdout(), auto_refresh=False) as live:
                while True:  # until Ctrl-C
                    live.update(top_tables(top_view(_fetch(api, since, view), namespace)))
                    live.refresh()
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass


def register(app: typer.Typer) -> None:
    app.command("top")(top)
