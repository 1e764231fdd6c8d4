"""Real agents on simulated hosts (127.0.0.3, 127.0.0.4, 127.0.0.5) with real Envoys and
real backends, against a real control plane: traffic through the mesh, an Envoy crash, an
unhealthy app, an agent restart and a SIGTERM drain."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gossamer.agent.process import is_running
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import api_client, apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

from .agents import PACED, AgentHandle, Load, agents, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]

HEALTH = {
    "type": "http",
    "path": "/healthz",
    "interval": "200ms",
    "timeout": "200ms",
    "healthyThreshold": 1,
    "unhealthyThreshold": 2,
}


def _workload(name: str, service: str, app: HttpBackend, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "service": service,
        "appAddress": app.address[0],
        "appPort": app.address[1],
        "healthCheck": HEALTH,
        **extra,
    }


async def _services(app: Any) -> None:
    await apply_yaml(
        app,
        f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: {free_port()}}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: catalog}}
spec: {{ports: [{{name: http, port: {free_port()}}}]}}
""",
        wait=False,
    )


async def _catalog_url(web: AgentHandle) -> str:
    env = await web.env()
    return f"http://{env['CATALOG_ADDR']}/hello"


async def _answered_by(url: str, backend: str) -> bool:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        try:
            r = await client.get(url)
        except httpx.TransportError:
            return False
    return r.status_code == 200 and json.loads(r.text)["backend"] == backend


async def _health(app: Any, name: str) -> str | None:
    async with api_client(app, trust_env=False) as client:
        r = await client.get(f"/v1/resources/Workload/default/{name}")
    return str(r.json()["spec"]["health"]) if r.status_code == 200 else None


async def test_traffic_envoy_crash_unhealthy_app_and_agent_restart(tmp_path: Path) -> None:
    async with (
        running_control_plane(tmp_path / "cp") as app,
        HttpBackend("web-app", host="127.0.0.3") as web_app,
        contextlib.AsyncExitStack() as apps,
    ):
        catalog_app = await apps.enter_async_context(HttpBackend("catalog-app", "127.0.0.4"))
        await _services(app)
        web = AgentHandle(
            app,
            "host-a",
            "127.0.0.3",
            tmp_path / "a",
            [_workload("web-1", "web", web_app, dependencies=[{"service": "catalog"}])],
        )
        catalog = AgentHandle(
            app,
            "host-b",
            "127.0.0.4",
            tmp_path / "b",
            [_workload("catalog-1", "catalog", catalog_app, labels={"version": "v1"})],
        )
        async with agents(web, catalog):
            for h in (web, catalog):
                await h.join()
                await h.start()
            await web.wait_running()
            await catalog.wait_running()
            url = await _catalog_url(web)
            await wait_until(
                lambda: _answered_by(url, "catalog-app"),
                timeout=30,
                what="web's sidecar reaching catalog through the mesh",
            )

            # an Envoy dies -> the agent starts a new one, traffic comes back
            first = catalog.envoy_pids()["default/catalog-1"]
            os.kill(first, signal.SIGKILL)
            await wait_until(
                lambda: catalog.envoy_pids().get("default/catalog-1") not in (None, first),
                timeout=30,
                what="a new catalog Envoy",
            )
            await wait_until(
                lambda: _answered_by(url, "catalog-app"),
                timeout=30,
                what="traffic through the restarted Envoy",
            )
            assert catalog.status()["workloads"]["default/catalog-1"]["envoy"]["restarts"] >= 1

            # the app goes down -> fails its health check -> its endpoint leaves; it comes
            # back up -> healthy again
            host, port = catalog_app.address
            await apps.aclose()
            await wait_until(
                lambda: _is(app, "catalog-1", "unhealthy"),
                timeout=30,
                what="catalog-1 unhealthy in the store",
            )
            await wait_until(
                lambda: _not_answered(url), timeout=30, what="no healthy catalog endpoint left"
            )
            await apps.enter_async_context(HttpBackend("catalog-app", host=host, port=port))
            await wait_until(
                lambda: _is(app, "catalog-1", "healthy"),
                timeout=30,
                what="catalog-1 healthy in the store",
            )
            await wait_until(
                lambda: _answered_by(url, "catalog-app"), timeout=30, what="catalog healthy again"
            )

            # restarting the agent (detach + start) keeps traffic: zero failed requests
            pid = catalog.envoy_pids()["default/catalog-1"]
            load = Load(url, pace=PACED)
            loop = asyncio.create_task(load.run())
            try:
                await wait_until(lambda: load.ok >= 20, timeout=30, what="load going")
                assert await catalog.signal(signal.SIGHUP) == 0, catalog.log()
                await catalog.start()
                status = await catalog.wait_running()
                seen = load.ok
                await wait_until(
                    lambda: load.ok >= seen + 50, timeout=30, what="load after the restart"
                )
            finally:
                load.stop()
                await loop
            assert load.failed == []
            assert status["workloads"]["default/catalog-1"]["envoy"]["state"] == "adopted"
            assert catalog.envoy_pids()["default/catalog-1"] == pid

            # an agent that crashes (SIGKILL) leaves its Envoy; the next run adopts it
            assert catalog.process is not None
            await catalog.process.kill()
            await catalog.start()
            status = await catalog.wait_running()
            assert status["workloads"]["default/catalog-1"]["envoy"]["state"] == "adopted"
            assert catalog.envoy_pids()["default/catalog-1"] == pid

            # `gossamer agent status` shows it
            code, out = await run_cli("agent", "status", "--state-dir", str(catalog.state_dir))
            assert code == 0, out
            assert "default/catalog-1" in out and "adopted" in out and "healthy" in out


async def _is(app: Any, name: str, health: str) -> bool:
    return await _health(app, name) == health


async def _not_answered(url: str) -> bool:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        try:
            r = await client.get(url)
        except httpx.TransportError:
            return True
    return r.status_code != 200


async def test_sigterm_drains_without_failed_requests(tmp_path: Path) -> None:
    async with (
        running_control_plane(tmp_path / "cp") as app,
        HttpBackend("web-app", host="127.0.0.3") as web_app,
        HttpBackend("catalog-b", host="127.0.0.4") as app_b,
        HttpBackend("catalog-c", host="127.0.0.5") as app_c,
    ):
        await _services(app)
        web = AgentHandle(
            app,
            "host-a",
            "127.0.0.3",
            tmp_path / "a",
            [_workload("web-1", "web", web_app, dependencies=[{"service": "catalog"}])],
        )
        b = AgentHandle(
            app, "host-b", "127.0.0.4", tmp_path / "b", [_workload("catalog-b", "catalog", app_b)]
        )
        c = AgentHandle(
            app,
            "host-c",
            "127.0.0.5",
            tmp_path / "c",
            [_workload("catalog-c", "catalog", app_c)],
            drain_seconds=2,
        )
        async with agents(web, b, c):
            for h in (web, b, c):
                await h.join()
                await h.start()
            for h in (web, b, c):
                await h.wait_running()
            url = await _catalog_url(web)
            for backend in ("catalog-b", "catalog-c"):
                await wait_until(
                    lambda b=backend: _answered_by(url, b),
                    timeout=30,
                    what=f"traffic reaching {backend}",
                )
            envoy_c = c.state.envoys()["default/catalog-c"]

            load = Load(url, pace=PACED)
            loop = asyncio.create_task(load.run())
            try:
                await wait_until(
                    lambda: load.backends.get("catalog-c", 0) >= 5,
                    timeout=30,
                    what="load reaching catalog-c",
                )
                code = await c.signal(signal.SIGTERM)
                health_at_exit = await _health(app, "catalog-c")
                after = load.ok
                await wait_until(
                    lambda: load.ok >= after + 50, timeout=30, what="load after catalog-c stopped"
                )
            finally:
                load.stop()
                await loop
            assert code == 0, c.log()
            assert load.failed == []
            assert health_at_exit == "draining"
            assert not is_running(envoy_c.pid, envoy_c.start_time), "orphaned Envoy"
            assert c.status()["state"] == "stopped"
            assert load.backends["catalog-b"] > 0
