"""``proxy-status`` and ``proxy-config`` through HTTP against a real API server."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from typer.testing import CliRunner

from gossamer.cli.main import app
from gossamer.xds.status import Nack, ProxyStatus, TypeStatus

from .conftest import ApiServer


def status(
    name: str,
    *,
    namespace: str = "default",
    connected: bool = True,
    nack: str | None = None,
    acked: str = "0123456789abcdef",
    seen_ago: float = 3.0,
) -> ProxyStatus:
    sent = "0123456789abcdef"
    now = time.time()
    types = [
        TypeStatus(
            t,
            sent,
            acked if t != "routes" else sent,
            2,
            Nack("fedcba9876543210", nack, now) if nack and t == "listeners" else None,
        )
        for t in ("clusters", "endpoints", "listeners", "routes")
    ]
    return ProxyStatus(
        node_id=f"sidecar~{namespace}~{name}",
        kind="sidecar",
        namespace=namespace,
        name=name,
        host="host-a",
        connected=connected,
        protocol="sotw",
        last_seen=now - seen_ago,
        synced=acked == sent and nack is None,
        admin_address="127.0.0.2:19000",
        types=types,
    )


def test_proxy_status_table(runner: CliRunner, server: ApiServer) -> None:
    empty = runner.invoke(app, ["proxy-status"])
    assert empty.exit_code == 0
    assert empty.stdout == "no proxies have connected yet\n"

    server.fake.add_proxy(status("cart-1"))
    server.fake.add_proxy(status("cart-2", nack="cannot bind '127.0.0.2:15006': Address in use"))
    server.fake.add_proxy(status("web-1", acked="99999999", seen_ago=125))
    server.fake.add_proxy(status("old", connected=False, seen_ago=7200))
    result = runner.invoke(app, ["proxy-status"])
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "PROXY",
        "KIND",
        "HOST",
        "ENVOY",
        "STATE",
        "CLUSTERS",
        "ENDPOINTS",
        "LISTENERS",
        "ROUTES",
        "SDS",
        "CERT/BUNDLE",
        "LAST",
        "NACK",
        "LAST",
        "SEEN",
    ]
    by_name = {row.split()[0]: row.rstrip() for row in rows}
    assert by_name["default/cart-1"].split()[:9] == [
        "default/cart-1",
        "sidecar",
        "host-a",
        "-",
        "synced",
        "0123456/0123456",
        "0123456/0123456",
        "0123456/0123456",
        "0123456/0123456",
    ]
    assert by_name["default/cart-1"].split()[-3] == "-"
    assert by_name["default/cart-1"].endswith("s ago")
    assert by_name["default/cart-2"].split()[4] == "rejected"
    nack = "listeners: cannot bind '127.0.0.2:15006': Address in use"
    assert nack in by_name["default/cart-2"]
    assert by_name["default/web-1"].split()[4:6] == ["stale", "0123456/9999999"]
    assert by_name["default/web-1"].endswith("2m ago")
    assert by_name["default/old"].split()[4] == "disconnected"
    assert by_name["default/old"].endswith("2h ago")


def test_proxy_status_json(runner: CliRunner, server: ApiServer) -> None:
    server.fake.add_proxy(status("cart-1", nack="bad listener"))
    result = runner.invoke(app, ["proxy-status", "-o", "json"])
    [proxy] = json.loads(result.stdout)
    assert proxy["state"] == "rejected"
    listeners = next(t for t in proxy["types"] if t["type"] == "listeners")
    assert listeners["lastNack"]["message"] == "bad listener"


def test_proxy_config_by_name_namespace_or_node_id(runner: CliRunner, server: ApiServer) -> None:
    """Each name resolves to the node id; with no host to ask (this server has no agent
    registry) the control plane says so, and never reads the admin address the proxy
    announced (tests/integration/agent/test_config_dumps.py asks a real agent)."""
    server.fake.add_proxy(status("cart-1"))
    for proxy in ("cart-1", "default/cart-1", "sidecar~default~cart-1"):
        result = runner.invoke(app, ["proxy-config", proxy, "--timeout", "1"])
        assert result.exit_code == 1, result.output
        assert result.stderr == (
            "error: no host runs sidecar~default~cart-1; its config dump is available only "
            "through its agent or gateway\n"
        )
    assert runner.invoke(app, ["proxy-config", "cart-1", "--type", "secrets"]).exit_code == 2
    assert runner.invoke(app, ["proxy-config", "cart-1", "--timeout", "0"]).exit_code == 2


def test_proxy_config_names_that_do_not_resolve(runner: CliRunner, server: ApiServer) -> None:
    server.fake.add_proxy(status("cart-1"))
    server.fake.add_proxy(status("cart-1", namespace="other"))
    unknown = runner.invoke(app, ["proxy-config", "nope"])
    assert unknown.exit_code == 1
    assert unknown.stderr == (
        "error: no proxy is named 'nope'; known proxies: default/cart-1, other/cart-1\n"
    )
    several = runner.invoke(app, ["proxy-config", "cart-1"])
    assert several.exit_code == 1
    assert "names several proxies (sidecar~default~cart-1, sidecar~other~cart-1)" in several.stderr
    other = runner.invoke(app, ["proxy-config", "other/cart-1"])
    assert "no host runs sidecar~other~cart-1" in other.stderr


def test_a_sidecar_without_a_host_shows_its_workloads(
    runner: CliRunner, server: ApiServer, shop_file: Path
) -> None:
    """An Envoy whose node names no host (started without an agent) is shown on the host
    its Workload names, never ``-``."""
    assert runner.invoke(app, ["apply", "-f", str(shop_file)]).exit_code == 0
    server.fake.add_proxy(dataclasses.replace(status("cart-1"), host=None))
    result = runner.invoke(app, ["proxy-status"])
    assert result.exit_code == 0, result.output
    row = next(r for r in result.stdout.splitlines() if r.startswith("default/cart-1"))
    assert row.split()[2] == "host-a"
    as_json = json.loads(runner.invoke(app, ["proxy-status", "-o", "json"]).stdout)
    assert as_json[0]["host"] == "host-a"
