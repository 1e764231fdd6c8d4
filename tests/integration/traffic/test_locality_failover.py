"""Locality through real agents, real sidecars and a real control plane: a caller in zone-a
sends everything to zone-a while zone-b stands by; every zone-a instance dying under load
costs its clients nothing (their sidecars answer 503, retries leave for the other priority,
the agent's health check takes them out of EDS), and traffic returns to zone-a when it comes
back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.agent.agents import AgentHandle, agents

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import api_client, apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]

HOST_A, HOST_B = "127.0.0.3", "127.0.0.4"
CATALOG = "outbound|default/catalog|http"
ZONE_A = {"cat-a1", "cat-a2"}
HEALTH = {
    "type": "http",
    "path": "/healthz",
    "interval": "200ms",
    "timeout": "200ms",
    "healthyThreshold": 1,
    "unhealthyThreshold": 2,
}
#: concurrent client loops: at most this many retries are in flight at once, within the
#: default retry budget's floor of 3
CLIENTS = 3


def _workload(name: str, service: str, app: HttpBackend, zone: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "service": service,
        "zone": zone,
        "appAddress": app.address[0],
        "appPort": app.address[1],
        "healthCheck": HEALTH,
        **extra,
    }


@dataclass
class Load:
    """``CLIENTS`` loops of sequential GETs until stopped (bounded by ``max_seconds``):
    which backend answered each request, in order, and every failure."""

    url: str
    max_seconds: float = 180.0
    answers: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for _ in range(CLIENTS):
                tg.create_task(self._client())

    async def _client(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    r = await client.get(self.url)
                except httpx.HTTPError as e:
                    self.failed.append(repr(e))
                    continue
                if r.status_code != 200:
                    self.failed.append(f"{r.status_code} {r.text[:120]}")
                    continue
                self.answers.append(json.loads(r.text)["backend"])

    def last(self, n: int) -> Counter[str]:
        return Counter(self.answers[-n:])

    def stop(self) -> None:
        self._stop.set()


async def _health(app: ControlPlaneApp, name: str) -> str | None:
    async with api_client(app, trust_env=False) as client:
        r = await client.get(f"/v1/resources/Workload/default/{name}")
    return str(r.json()["spec"]["health"]) if r.status_code == 200 else None


async def _all(app: ControlPlaneApp, names: list[str], health: str) -> bool:
    return all([await _health(app, n) == health for n in names])


async def _catalog_hosts(admin: EnvoyAdmin) -> dict[str, tuple[int, str]]:
    """The caller Envoy's catalog hosts: hostname -> (priority, zone)."""
    body = await admin.clusters()
    out: dict[str, tuple[int, str]] = {}
    for status in body.get("cluster_statuses", []):
        if status["name"] == CATALOG:
            for h in status.get("host_statuses", []):
                out[h["hostname"]] = (h.get("priority", 0), h.get("locality", {}).get("zone", ""))
    return out


async def test_a_dead_zone_fails_over_without_errors_and_traffic_returns(
    tmp_path: Path,
) -> None:
    async with (
        running_control_plane(tmp_path / "cp") as app,
        HttpBackend("web-app", HOST_A) as web_app,
        HttpBackend("cat-b1", HOST_B) as cat_b1,
        contextlib.AsyncExitStack() as zone_a_apps,
    ):
        a1 = await zone_a_apps.enter_async_context(HttpBackend("cat-a1", HOST_A))
        a2 = await zone_a_apps.enter_async_context(HttpBackend("cat-a2", HOST_A))
        addresses = {"cat-a1": a1.address, "cat-a2": a2.address}
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
        host_a = AgentHandle(
            app,
            "host-a",
            HOST_A,
            tmp_path / "a",
            [
                _workload("web-1", "web", web_app, "zone-a", dependencies=[{"service": "catalog"}]),
                _workload("catalog-a1", "catalog", a1, "zone-a"),
                _workload("catalog-a2", "catalog", a2, "zone-a"),
            ],
        )
        host_b = AgentHandle(
            app,
            "host-b",
            HOST_B,
            tmp_path / "b",
            [_workload("catalog-b1", "catalog", cat_b1, "zone-b")],
        )
        async with agents(host_a, host_b):
            for h in (host_a, host_b):
                await h.join()
                await h.start()
            await host_a.wait_running()
            await host_b.wait_running()
            env = await host_a.env()
            url = f"http://{env['CATALOG_ADDR']}/hello"
            admin = EnvoyAdmin(host_a.state.envoys()["default/web-1"].admin, name="web-1")
            async with admin:
                # web-1's Envoy knows every instance: zone-a first, zone-b standing by
                want = {
                    "catalog-a1": (0, "zone-a"),
                    "catalog-a2": (0, "zone-a"),
                    "catalog-b1": (1, "zone-b"),
                }
                await wait_until(
                    lambda: _hosts_are(admin, want),
                    timeout=60,
                    what="web-1's Envoy holding catalog by priority",
                )
                await wait_until(
                    lambda: _all(app, ["catalog-a1", "catalog-a2", "catalog-b1"], "healthy"),
                    timeout=30,
                    what="every catalog instance healthy",
                )

                load = Load(url)
                loop = asyncio.create_task(load.run())
                try:
                    # all of it to zone-a, both instances: 300 answers in a row (a retry of
                    # an attempt that failed while the first connections opened on a loaded
                    # machine may go to the other priority, as retries are meant to)
                    await wait_until(
                        lambda: len(load.answers) >= 300 and set(load.last(300)) == ZONE_A,
                        timeout=60,
                        what="300 answers in a row from zone-a",
                    )

                    # every zone-a instance dies under load
                    await zone_a_apps.aclose()
                    await wait_until(
                        lambda: _all(app, ["catalog-a1", "catalog-a2"], "unhealthy"),
                        timeout=30,
                        what="the zone-a instances unhealthy in the store",
                    )
                    await wait_until(
                        lambda: load.last(200) == Counter({"cat-b1": 200}),
                        timeout=60,
                        what="200 answers in a row from zone-b",
                    )

                    # zone-a comes back: traffic returns to it
                    for name in ("cat-a1", "cat-a2"):
                        host, port = addresses[name]
                        await zone_a_apps.enter_async_context(HttpBackend(name, host, port))
                    await wait_until(
                        lambda: _all(app, ["catalog-a1", "catalog-a2"], "healthy"),
                        timeout=30,
                        what="the zone-a instances healthy again",
                    )
                    await wait_until(
                        lambda: set(load.last(200)) == ZONE_A and len(load.answers) > 200,
                        timeout=60,
                        what="200 answers in a row from zone-a again",
                    )
                finally:
                    load.stop()
                    await loop
                assert load.failed == [], load.failed[:10]
                # the retries that hid the dead zone went to the other priority
                stats = await admin.stats(r"^cluster\.outbound\|default/catalog\|http\.")
                assert stats[f"cluster.{CATALOG}.upstream_rq_retry"] > 0
                assert stats[f"cluster.{CATALOG}.upstream_rq_retry_overflow"] == 0


async def _hosts_are(admin: EnvoyAdmin, want: dict[str, tuple[int, str]]) -> bool:
    return await _catalog_hosts(admin) == want
