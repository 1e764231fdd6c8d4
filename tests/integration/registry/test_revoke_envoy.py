"""With real Envoys: an agent's Workloads serve traffic; their health and the agent's
revocation reach the client's sidecar by the time the call with ``wait=true`` returns."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import (
    api_client,
    apply_manifests,
    mesh_envoy,
    running_control_plane,
)
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CLIENT, SERVER = "127.0.0.2", "127.0.0.3"
#: requests per check: enough that one instance missing from a round-robin shows
ROUNDS = 8


async def test_health_and_revoke_reach_the_client_sidecar(tmp_path: Path) -> None:
    local = free_port(CLIENT)
    async with (
        HttpBackend("reviews-1", host=SERVER) as one,
        HttpBackend("reviews-2", host=SERVER) as two,
        running_control_plane(tmp_path / "cp") as app,
        api_client(app, timeout=60) as api,
        httpx.AsyncClient(timeout=5) as client,
    ):
        await apply_manifests(
            app,
            [
                service("web"),
                service("reviews", 9080),
                workload(
                    "web-1",
                    "web",
                    CLIENT,
                    free_port(CLIENT),
                    1,
                    dependencies=[
                        {"service": "reviews", "localAddress": CLIENT, "localPort": local}
                    ],
                ),
            ],
            wait=False,
        )
        token = (
            await api.post("/v1/tokens", json={"scope": {"anyService": True, "anyNamespace": True}})
        ).json()["token"]
        joined = await api.post("/v1/agents/join", json={"token": token, "host": "vm-b"})
        agent_id = joined.json()["agentId"]
        auth = {"Authorization": f"Bearer {joined.json()['credential']}"}
        mine = [
            workload(b.name, "reviews", SERVER, free_port(SERVER), b.address[1], app_address=SERVER)
            for b in (one, two)
        ]
        put = await api.put(
            f"/v1/agents/{agent_id}/workloads", json={"workloads": mine}, headers=auth
        )
        assert put.status_code == 200, put.text

        async def answers() -> set[str]:
            """Which backends answer ROUNDS requests ("503" for a refusal)."""
            seen = set()
            for _ in range(ROUNDS):
                try:
                    r = await client.get(f"http://{CLIENT}:{local}/hello")
                except httpx.TransportError:
                    seen.add("unreachable")
                    continue
                seen.add(
                    json.loads(r.text)["backend"] if r.status_code == 200 else str(r.status_code)
                )
            return seen

        async def both() -> bool:
            return await answers() == {"reviews-1", "reviews-2"}

        async with (
            mesh_envoy(app, ProxyIdentity("sidecar", "default", "web-1")),
            mesh_envoy(app, ProxyIdentity("sidecar", "default", "reviews-1")),
            mesh_envoy(app, ProxyIdentity("sidecar", "default", "reviews-2")),
        ):
            await wait_until(both, timeout=30, what="traffic to both reviews instances")

            down = await api.post(
                f"/v1/agents/{agent_id}/health?wait=true&timeout=30",
                json={"workloads": {"reviews-1": "unhealthy"}},
                headers=auth,
            )
            assert down.status_code == 200, down.text
            assert "sidecar~default~web-1" in down.json()["ackedBy"]
            assert await answers() == {"reviews-2"}

            up = await api.post(
                f"/v1/agents/{agent_id}/health?wait=true&timeout=30",
                json={"workloads": {"reviews-1": "healthy"}},
                headers=auth,
            )
            assert up.status_code == 200, up.text
            await wait_until(both, timeout=10, what="reviews-1 back in rotation")

            revoked = await api.post("/v1/agents/vm-b/revoke?wait=true&timeout=30")
            assert revoked.status_code == 200, revoked.text
            assert await answers() == {"503"}
