"""Pure rendering helpers: ages, short versions, diffs, tables of unknown kinds."""

from __future__ import annotations

import io

import yaml
from rich.console import Console

from gossamer.cli import render


def text(table: object) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def test_ago() -> None:
    assert [render.ago(s) for s in (-1, 0, 59.9, 60, 3599, 3600, 86400 * 3 + 5)] == [
        "0s ago",
        "0s ago",
        "59s ago",
        "1m ago",
        "59m ago",
        "1h ago",
        "3d ago",
    ]


def test_short() -> None:
    assert render.short("0123456789") == "0123456"
    assert render.short("7") == "7"
    assert render.short("") == "-"


def test_manifest_diff_shows_changed_fields_only() -> None:
    a = {"kind": "Service", "spec": {"ports": [{"name": "http", "port": 80}]}}
    b = {"kind": "Service", "spec": {"ports": [{"name": "http", "port": 81}]}}
    diff = render.manifest_diff("Service default/x", a, b).splitlines()
    assert diff[:2] == ["--- Service default/x (stored)", "+++ Service default/x (applied)"]
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("---", "+++")] == [
        "-    port: 80",
        "+    port: 81",
    ]
    assert render.manifest_diff("k", a, a) == ""


def test_yaml_stream_round_trips() -> None:
    docs = [{"kind": "A", "x": 1}, {"kind": "B", "y": [1, 2]}]
    assert list(yaml.safe_load_all(render.to_yaml_stream(docs))) == docs


def test_unknown_kinds_get_a_generic_table() -> None:
    m = {
        "kind": "AccessPolicy",
        "metadata": {"name": "shop", "namespace": "default", "labels": {"team": "a"}},
    }
    out = text(render.resource_table("AccessPolicy", [m]))
    assert out.split() == ["NAMESPACE", "NAME", "LABELS", "default", "shop", "team=a"]


def test_user_text_is_not_rich_markup() -> None:
    m = {
        "kind": "Route",
        "metadata": {"name": "r[bold]x"},
        "spec": {
            "service": "cart",
            "rules": [
                {"destinations": [{"service": "cart", "subset": {"version": "v2"}, "weight": 10}]}
            ],
        },
    }
    out = text(render.resource_table("Route", [m]))
    assert "r[bold]x" in out
    assert "cart{version=v2}:10" in out


def test_proxy_table_without_types_or_nacks() -> None:
    p: dict[str, object] = {
        "namespace": "default",
        "name": "gw",
        "kind": "gateway",
        "host": None,
        "state": "disconnected",
        "lastSeen": 100.0,
        "types": [],
    }
    out = text(render.proxy_table([p], now=160.0)).splitlines()[1].split()
    assert out == [
        "default/gw",
        "gateway",
        "-",
        "-",  # ENVOY: it announced none
        "disconnected",
        "-",
        "-",
        "-",
        "-",
        "-",  # SDS: no report
        "-",
        "1m",
        "ago",
    ]
