"""A Route's rule change reaches two real Envoy gateways serving the same Routes, their
table patched in place (``translate.gateway_tables``) and its encoding shared
(``xds.snapshot.Encoded``): each client sees the new destination on the changed host at
once after ``apply --wait``, and the unchanged host as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.gateway.gateways import plain_backend

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, mesh_envoy, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.translate import gateway_tables
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

HOSTS = "[shop.example.com, other.example.com]"


def gateway(name: str, port: int) -> str:
    return f"""
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: {name}}}
spec: {{address: 127.0.0.1, port: {port}, hosts: {HOSTS}}}
"""


def route(name: str, host: str, to: str) -> str:
    return f"""
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: {name}}}
spec:
  gateways: [edge, edge-2]
  hosts: [{host}]
  rules: [{{destinations: [{{service: {to}}}]}}]
"""


async def test_a_rule_change_reaches_both_gateways_patched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = {"edge": free_port(), "edge-2": free_port()}
    async with (
        HttpBackend("a", host="127.0.0.3") as a,
        HttpBackend("b", host="127.0.0.4") as b,
        running_control_plane(tmp_path / "cp") as app,
    ):
        manifests = [plain_backend("a", a.address), plain_backend("b", b.address)]
        manifests += [gateway(g, p) for g, p in ports.items()]
        manifests += [
            route("shop", "shop.example.com", "a"),
            route("other", "other.example.com", "b"),
        ]
        await apply_yaml(app, "---".join(manifests), wait=False)
        async with (
            mesh_envoy(app, ProxyIdentity("gateway", "default", "edge"), workdir=tmp_path / "e1"),
            mesh_envoy(app, ProxyIdentity("gateway", "default", "edge-2"), workdir=tmp_path / "e2"),
            httpx.AsyncClient(timeout=10, trust_env=False) as client,
        ):

            async def answers(host: str) -> list[str | None]:
                out: list[str | None] = []
                for port in ports.values():
                    try:
                        r = await client.get(f"http://127.0.0.1:{port}/", headers={"host": host})
                        out.append(r.headers.get("x-backend"))
                    except httpx.TransportError:
                        out.append(None)
                return out

            async def served() -> bool:
                return await answers("shop.example.com") == ["a", "a"]

            await wait_until(served, timeout=30, what="both gateways serving shop from a")
            assert await answers("other.example.com") == ["b", "b"]
            built: list[Any] = []
            real = gateway_tables.VhostTable.__init__

            def counted(self: gateway_tables.VhostTable, *args: Any) -> None:
                built.append(args)
                real(self, *args)

            monkeypatch.setattr(gateway_tables.VhostTable, "__init__", counted)
            await apply_yaml(app, route("shop", "shop.example.com", "b"))  # --wait
            assert await answers("shop.example.com") == ["b", "b"]
            assert await answers("other.example.com") == ["b", "b"]
            assert built == []  # patched in place, not built afresh
            assert a.requests_by_path["/"] >= 2 and b.requests_by_path["/"] >= 6
