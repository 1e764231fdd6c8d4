"""The liveness rule through real Envoy (issue 7, R5).

Two instances of ``reviews`` on two hosts (127.0.0.2 ``vm-a`` and 127.0.0.3 ``vm-b``), each
registered by its host's agent and fronted by its own sidecar, behind a caller's sidecar.
The agents here are the protocol's real calls (join, PUT workloads, POST health as the
heartbeat) made by the test, so a heartbeat can be stopped on cue. Short intervals come
from the control plane's documented settings.

- An agent upgrade (SIGHUP: the agent is gone, its Envoy keeps its stream) changes nothing.
- A host that dies (its agent stops AND its sidecar Envoy freezes: SIGSTOP) is marked
  unreachable: the caller's Envoy sees its endpoint unhealthy and every request succeeds
  on the other instance. When it comes back, it gets traffic again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.registry.liveness import LivenessSettings
from gossamer.server.app import ControlPlaneApp, create_app
from gossamer.server.settings import Settings
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import api_client, apply_manifests, mesh_envoy
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity
from gossamer.xds.server import Keepalive

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CALLER = "127.0.0.4"
HOSTS = {"vm-a": "127.0.0.2", "vm-b": "127.0.0.3"}
#: an agent is silent after 3 x 0.2 s; a host's streams are gone after 1 s without any;
#: a frozen Envoy's stream ends within 0.5 + 0.5 s
LIVENESS = LivenessSettings(heartbeat_interval=0.2, missed_heartbeats=3, stream_grace=1.0)
KEEPALIVE = Keepalive(time=0.5, timeout=0.5)
#: how long a dead host may take to leave the caller's rotation (generous: 2 shared cores)
DEADLINE = 20.0
ROUNDS = 8


class Agent:
    """One host's agent, speaking the real protocol; its heartbeat can stop and resume."""

    def __init__(self, api: httpx.AsyncClient, host: str) -> None:
        self.api = api
        self.host = host
        self.agent_id = ""
        self.auth: dict[str, str] = {}
        self._beat: asyncio.Task[None] | None = None

    async def join(self) -> None:
        token = (
            await self.api.post(
                "/v1/tokens", json={"scope": {"anyService": True, "anyNamespace": True}}
            )
        ).json()["token"]
        joined = await self.api.post("/v1/agents/join", json={"token": token, "host": self.host})
        self.agent_id = joined.json()["agentId"]
        self.auth = {"Authorization": f"Bearer {joined.json()['credential']}"}

    async def register(self, manifest: dict[str, Any]) -> None:
        put = await self.api.put(
            f"/v1/agents/{self.agent_id}/workloads",
            json={"workloads": [manifest]},
            headers=self.auth,
        )
        assert put.status_code == 200, put.text

    async def _heartbeat(self) -> None:
        while True:
            sent = await self.api.post(
                f"/v1/agents/{self.agent_id}/health", json={"workloads": {}}, headers=self.auth
            )
            assert sent.status_code == 200, sent.text
            await asyncio.sleep(LIVENESS.heartbeat_interval)

    def start(self) -> None:
        if self._beat is None:
            self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None


@contextlib.asynccontextmanager
async def control_plane(tmp_path: Path) -> AsyncIterator[ControlPlaneApp]:
    settings = Settings(
        tmp_path / "cp",
        api_addr=("127.0.0.1", 0),
        xds_addr=("127.0.0.1", 0),
        liveness=LIVENESS,
        xds_keepalive=KEEPALIVE,
        xds_tls="optional",  # mesh_envoy: Envoys without a certificate, on plaintext xDS
    )
    async with create_app(settings) as app:
        yield app


async def endpoint_health(caller: EnvoyProcess, address: str) -> set[str]:
    """What the caller's Envoy thinks of the endpoints at ``address`` (EDS health)."""
    clusters = json.loads(await caller.admin_get("/clusters", {"format": "json"}))
    out = set()
    for cluster in clusters.get("cluster_statuses", []):
        for host in cluster.get("host_statuses", []):
            if host["address"]["socket_address"]["address"] == address:
                out.add(host["health_status"].get("eds_health_status", "HEALTHY"))
    return out


async def test_a_dead_host_leaves_the_rotation_and_an_agent_upgrade_changes_nothing(
    tmp_path: Path,
) -> None:
    local = free_port(CALLER)
    frozen: EnvoyProcess | None = None
    async with (
        HttpBackend("reviews-a", host=HOSTS["vm-a"]) as backend_a,
        HttpBackend("reviews-b", host=HOSTS["vm-b"]) as backend_b,
        control_plane(tmp_path) as app,
        api_client(app, timeout=30) as api,
        httpx.AsyncClient(timeout=2) as client,
    ):
        await apply_manifests(
            app,
            [
                service("web"),
                service("reviews", 9080),
                workload(
                    "web-1",
                    "web",
                    CALLER,
                    free_port(CALLER),
                    1,
                    dependencies=[
                        {"service": "reviews", "localAddress": CALLER, "localPort": local}
                    ],
                ),
            ],
            wait=False,
        )
        agents = {host: Agent(api, host) for host in HOSTS}
        for (host, address), backend in zip(HOSTS.items(), (backend_a, backend_b), strict=True):
            agent = agents[host]
            await agent.join()
            await agent.register(
                workload(
                    backend.name,
                    "reviews",
                    address,
                    free_port(address),
                    backend.address[1],
                    host=host,
                )
            )
            agent.start()

        async def answers() -> set[str]:
            seen = set()
            for _ in range(ROUNDS):
                try:
                    r = await client.get(f"http://{CALLER}:{local}/hello")
                except httpx.TransportError:
                    seen.add("unreachable")
                    continue
                seen.add(r.json()["backend"] if r.status_code == 200 else str(r.status_code))
            return seen

        async def states() -> dict[str, str]:
            items = (await api.get("/v1/agents")).json()["items"]
            return {a["host"]: a["state"] for a in items}

        rule = app.agents.presence.rule
        try:
            async with (
                mesh_envoy(app, ProxyIdentity("sidecar", "default", "web-1")) as caller,
                mesh_envoy(
                    app, ProxyIdentity("sidecar", "default", "reviews-a", host="vm-a")
                ) as envoy_a,
                mesh_envoy(app, ProxyIdentity("sidecar", "default", "reviews-b", host="vm-b")),
            ):

                async def both() -> bool:
                    return await answers() == {"reviews-a", "reviews-b"}

                await wait_until(both, timeout=30, what="traffic to both reviews instances")

                # -- an agent upgrade: vm-a's agent is away for 3x its deadline, its Envoy
                # keeps its stream
                await agents["vm-a"].stop()

                def away_long() -> bool:
                    last = rule.last_heartbeat("vm-a")
                    return last is not None and (
                        time.monotonic() - last
                        > 3 * LIVENESS.agent_deadline + LIVENESS.stream_grace
                    )

                await wait_until(away_long, timeout=DEADLINE, what="vm-a's agent away")
                assert await states() == {"vm-a": "active", "vm-b": "active"}
                assert await endpoint_health(caller, HOSTS["vm-a"]) == {"HEALTHY"}
                assert await answers() == {"reviews-a", "reviews-b"}
                agents["vm-a"].start()

                # -- vm-a dies: its agent stops and its Envoy freezes
                await agents["vm-a"].stop()
                os.kill(envoy_a.pid, signal.SIGSTOP)
                frozen = envoy_a
                died = time.monotonic()

                async def only_b() -> bool:
                    return await answers() == {"reviews-b"}

                await wait_until(only_b, timeout=DEADLINE, what="every request served by vm-b")
                took = time.monotonic() - died
                assert await endpoint_health(caller, HOSTS["vm-a"]) == {"UNHEALTHY"}
                assert await endpoint_health(caller, HOSTS["vm-b"]) == {"HEALTHY"}
                assert await states() == {"vm-a": "unreachable", "vm-b": "active"}
                served = backend_a.requests
                assert await answers() == {"reviews-b"}
                assert backend_a.requests == served
                print(f"dead host out of the caller's rotation after {took:.2f} s")

                # -- it comes back: Envoy thaws (and reconnects), the agent heartbeats
                os.kill(envoy_a.pid, signal.SIGCONT)
                frozen = None
                agents["vm-a"].start()
                await wait_until(both, timeout=DEADLINE, what="vm-a back in rotation")
                assert await states() == {"vm-a": "active", "vm-b": "active"}
        finally:
            if frozen is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(frozen.pid, signal.SIGCONT)
            for agent in agents.values():
                await agent.stop()
