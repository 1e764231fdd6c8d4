"""``gossamer top``'s rows and tables are pure functions of /v1/topology's JSON."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from gossamer.cli.top import top_tables, top_view


def figures(
    requests: int, rps: float, e4: int = 0, e5: int = 0, mtls: float = 0.0
) -> dict[str, Any]:
    return {
        "requests": requests,
        "rps": rps,
        "errors4xx": e4,
        "errors5xx": e5,
        "latencyMs": {"p50": 4.2, "p90": 8.0, "p99": 31.5}
        if requests
        else {"p50": None, "p99": None},
        "mtls": mtls,
    }


TOPOLOGY = {
    "windowSeconds": 60,
    "nodes": [
        {"id": "default/web", "kind": "service", **figures(30, 0.5, e5=3)},
        {"id": "shop/api", "kind": "service", **figures(120, 2.0, e4=12, e5=6, mtls=1.0)},
        {"id": "default/edge", "kind": "gateway", **figures(0, 0.0)},
        {"id": "unauthenticated", "kind": "unknown", **figures(0, 0.0)},
    ],
    "edges": [
        {"source": "default/edge", "destination": "default/web", "view": "client",
         **figures(30, 0.5, e5=3)},
        {"source": "default/web", "destination": "shop/api", "view": "client",
         **figures(100, 1.667, e4=10, e5=5, mtls=1.0)},
        {"source": "unauthenticated", "destination": "shop/api", "view": "server",
         **figures(20, 0.333, e4=2, e5=1)},
    ],
}  # fmt: skip


def test_rows_are_busiest_first_with_4xx_and_5xx_apart_in_percent() -> None:
    view = top_view(TOPOLOGY)
    assert [s["id"] for s in view["services"]] == [
        "shop/api", "default/web", "default/edge", "unauthenticated",
    ]  # fmt: skip
    api = view["services"][0]
    assert (api["errors4xxPct"], api["errors5xxPct"], api["mtlsPct"]) == (10.0, 5.0, 100.0)
    assert (api["p50Ms"], api["p99Ms"], api["requests"]) == (4.2, 31.5, 120)
    assert [(e["source"], e["destination"]) for e in view["edges"]] == [
        ("default/web", "shop/api"),
        ("default/edge", "default/web"),
        ("unauthenticated", "shop/api"),
    ]
    assert view["edges"][1]["errors5xxPct"] == 10.0


def test_a_namespace_keeps_its_nodes_and_the_edges_touching_it() -> None:
    view = top_view(TOPOLOGY, "shop")
    assert [s["id"] for s in view["services"]] == ["shop/api"]
    assert [(e["source"], e["destination"]) for e in view["edges"]] == [
        ("default/web", "shop/api"),
        ("unauthenticated", "shop/api"),
    ]
    assert top_view(TOPOLOGY, "nowhere") == {"windowSeconds": 60, "services": [], "edges": []}


def test_the_tables_show_every_row_and_dashes_for_no_latency() -> None:
    console = Console(record=True, width=200, color_system=None)
    console.print(top_tables(top_view(TOPOLOGY)))
    lines = [line.split() for line in console.export_text().splitlines()]
    assert ["shop/api", "service", "2.000", "10.0", "5.0", "4.2", "31.5", "100.0", "120"] in lines
    assert ["default/edge", "gateway", "0.000", "0.0", "0.0", "-", "-", "0.0", "0"] in lines
    assert [
        "default/web",
        "shop/api",
        "client",
        "1.667",
        "10.0",
        "5.0",
        "4.2",
        "31.5",
        "100.0",
        "100",
    ] in lines
