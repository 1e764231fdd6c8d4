"""TrafficPolicy.healthCheck of a service with sidecars, through real agents and Envoys: the
agent of a workload whose file sets no check takes the policy's, the app fails it, and the
caller's Envoy stops sending it requests; the policy removed, the agent's default check
takes it back in. Each within a heartbeat."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from gossamer.agent.runner import HEARTBEAT_S
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import api_client, apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

from .agents import AgentHandle, agents, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]

#: a heartbeat brings the check, then the app fails it (first answer decides)
WITHIN = HEARTBEAT_S + 15


def _workload(name: str, service: str, app: HttpBackend, **extra: Any) -> dict[str, Any]:
    """No healthCheck: the agent runs its TrafficPolicy's, else a TCP connect."""
    return {
        "name": name,
        "service": service,
        "appAddress": app.address[0],
        "appPort": app.address[1],
        **extra,
    }


async def _backends(url: str, n: int = 20) -> Counter[str]:
    """Who answered ``n`` requests (``error`` for a failure)."""
    seen: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        for _ in range(n):
            try:
                r = await client.get(url)
            except httpx.TransportError:
                seen["error"] += 1
                continue
            seen[json.loads(r.text)["backend"] if r.status_code == 200 else "error"] += 1
    return seen


async def _agent_check(handle: AgentHandle) -> dict[str, Any]:
    code, out = await run_cli("agent", "status", "--json", "--state-dir", str(handle.state_dir))
    assert code == 0, out
    check: dict[str, Any] = json.loads(out)["workloads"]["default/catalog-2"]["health_check"]
    return check


async def test_a_policy_check_takes_a_failing_workload_out_and_back(tmp_path: Path) -> None:
    async with (
        running_control_plane(tmp_path / "cp") as app,
        HttpBackend("web-app", host="127.0.0.3") as web_app,
        HttpBackend("catalog-v1", host="127.0.0.4") as v1_app,
        HttpBackend("catalog-v2", host="127.0.0.5") as v2_app,
    ):
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
        web = AgentHandle(
            app,
            "host-a",
            "127.0.0.3",
            tmp_path / "a",
            [_workload("web-1", "web", web_app, dependencies=[{"service": "catalog"}])],
        )
        hosts = [
            AgentHandle(
                app,
                f"host-{v}",
                address,
                tmp_path / v,
                [_workload(f"catalog-{v[-1]}", "catalog", backend, labels={"version": v})],
            )
            for v, address, backend in (("v1", "127.0.0.4", v1_app), ("v2", "127.0.0.5", v2_app))
        ]
        v2 = hosts[1]
        async with agents(web, *hosts):
            for h in (web, *hosts):
                await h.join()
                await h.start()
            for h in (web, *hosts):
                await h.wait_running()
            env = await web.env()
            url = f"http://{env['CATALOG_ADDR']}/hello"
            await wait_until(
                lambda: _both(url), timeout=60, what="web reaching both catalog instances"
            )
            assert (await _agent_check(v2))["source"] == "default"

            # the v2 subset's policy checks a path its app answers 500 on
            started = time.monotonic()
            await apply_yaml(
                app,
                """
apiVersion: gossamer.dev/v1
kind: TrafficPolicy
metadata: {name: catalog-v2}
spec:
  service: catalog
  subset: {version: v2}
  healthCheck: {http: {path: /status/500}, interval: 500ms, timeout: 500ms,
                unhealthyThreshold: 2, healthyThreshold: 1}
""",
            )
            await wait_until(
                lambda: _only(url, "catalog-v1"),
                timeout=WITHIN,
                what="web's Envoy no longer sending to catalog-2 (failing its policy check)",
            )
            took_out = time.monotonic() - started
            check = await _agent_check(v2)
            assert check["source"] == "policy" and check["trafficPolicy"] == "default/catalog-v2"
            assert check["type"] == "http" and check["path"] == "/status/500"
            assert check["interval"] == "500ms" and check["unhealthyThreshold"] == 2
            assert v2_app.requests_by_path["/status/500"] >= 1
            # catalog-1 is not in the subset: it keeps its default check (a connect)
            assert (
                hosts[0].status()["workloads"]["default/catalog-1"]["health_check"]["source"]
                == "default"
            )
            code, out = await run_cli("agent", "status", "--state-dir", str(v2.state_dir))
            assert code == 0, out
            assert "http /status/500 (policy default/catalog-v2)" in out

            # the policy removed: the default check again, catalog-2 back in
            started = time.monotonic()
            async with api_client(app) as client:
                gone = await client.delete("/v1/resources/TrafficPolicy/default/catalog-v2")
            assert gone.status_code == 200, gone.text
            await wait_until(
                lambda: _both(url), timeout=WITHIN, what="catalog-2 back in web's Envoy"
            )
            took_back = time.monotonic() - started
            assert (await _agent_check(v2))["source"] == "default"
            print(f"out in {took_out:.1f} s, back in {took_back:.1f} s (heartbeat {HEARTBEAT_S} s)")


async def _only(url: str, backend: str) -> bool:
    return await _backends(url) == Counter({backend: 20})


async def _both(url: str) -> bool:
    seen = await _backends(url)
    return set(seen) == {"catalog-v1", "catalog-v2"}
