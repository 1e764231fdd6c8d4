"""SIGKILL the control plane and restart it: nothing lost, Envoy rebuilds nothing."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from gossamer.envoy.process import ManagedProcess
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import admin_token
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow]

CLIENT = "127.0.0.2"


@asynccontextmanager
async def control_plane(
    data: Path, api: int, xds: int, xds_tls: int = 0
) -> AsyncIterator[ManagedProcess]:
    code = (
        f"from gossamer.cli.logs import setup_logging; setup_logging(); "
        f"from gossamer.server.run import main; "
        f"main({str(data)!r}, '127.0.0.1:{api}', '127.0.0.1:{xds}', "
        f"xds_tls='optional', xds_tls_addr='127.0.0.1:{xds_tls}', api_tls=False)"
        # xDS is what is tested, by Envoys without a certificate (on the plaintext port)
    )
    proc = ManagedProcess(
        [sys.executable, "-c", code], log_path=data.parent / "cp.log", name="control-plane"
    )
    await proc.start()
    try:
        async with httpx.AsyncClient() as c:

            async def ready() -> bool:
                try:
                    return (await c.get(f"http://127.0.0.1:{api}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(ready, timeout=30, what="the control plane to be ready")
        yield proc
    finally:
        await proc.stop()


def counters(stats: dict[str, int]) -> dict[str, int]:
    keep = (
        "cluster_manager.cluster_modified",
        "cluster_manager.cluster_added",
        "listener_manager.listener_modified",
        "listener_manager.listener_added",
    )
    out = {k: stats.get(k, 0) for k in keep}
    out["update_empty"] = sum(v for k, v in stats.items() if k.endswith(".update_empty"))
    return out


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_sigkill_and_restart(tmp_path: Path, delta: bool) -> None:
    api, xds, local = free_port(), free_port(), free_port(CLIENT)
    data = tmp_path / "data"
    base = f"http://127.0.0.1:{api}"
    web = ProxyIdentity("sidecar", "default", "web-1")
    reviews = ProxyIdentity("sidecar", "default", "reviews-1")
    async with HttpBackend("reviews-v1", host="127.0.0.3") as v1, httpx.AsyncClient() as c:
        manifests = [
            service("web"),
            service("reviews", 9080),
            workload(
                "web-1",
                "web",
                CLIENT,
                free_port(CLIENT),
                1,
                dependencies=[{"service": "reviews", "localAddress": CLIENT, "localPort": local}],
            ),
            workload("reviews-1", "reviews", "127.0.0.3", free_port("127.0.0.3"), v1.address[1]),
        ]

        async def ok() -> bool:
            try:
                return (await c.get(f"http://{CLIENT}:{local}/")).status_code == 200
            except httpx.TransportError:
                return False

        async def synced() -> bool:
            try:
                items = (await c.get(f"{base}/v1/proxies")).json()["items"]
            except (httpx.TransportError, json.JSONDecodeError):
                return False
            return len(items) == 2 and all(p["state"] == "synced" for p in items)

        cp = control_plane(data, api, xds)
        proc = await cp.__aenter__()
        c.headers["Authorization"] = f"Bearer {admin_token(data)}"
        try:
            r = await c.post(f"{base}/v1/apply", json={"manifests": manifests})
            assert r.status_code == 200, r.text

            def envoy(p: ProxyIdentity) -> EnvoyProcess:
                admin = ("127.0.0.1", free_port())
                return EnvoyProcess(
                    ads_bootstrap(
                        p,
                        ("127.0.0.1", xds),
                        admin,
                        delta=delta,
                        metadata={"admin": f"127.0.0.1:{admin[1]}"},
                    )
                )

            async with envoy(web) as e1, envoy(reviews) as e2:
                await wait_until(ok, timeout=30, what="traffic through the mesh")
                await wait_until(synced, timeout=30, what="both proxies synced")
                before = [counters(await e.stats()) for e in (e1, e2)]

                await proc.kill()  # SIGKILL
                await cp.__aexit__(None, None, None)
                assert await ok()  # Envoy keeps serving while the control plane is down

                cp = control_plane(data, api, xds)
                await cp.__aenter__()
                await wait_until(synced, timeout=60, what="both proxies to resync")
                stored = (await c.get(f"{base}/v1/resources/Workload")).json()["items"]
                assert sorted(m["metadata"]["name"] for m in stored) == ["reviews-1", "web-1"]
                assert await ok()
                after = [counters(await e.stats()) for e in (e1, e2)]
                assert after == before, "Envoy rebuilt config after a control-plane restart"
                assert all(a["update_empty"] == 0 for a in after)
        finally:
            await cp.__aexit__(None, None, None)
