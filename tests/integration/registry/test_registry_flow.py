"""The agent protocol against a real control plane (SQLite store, REST API on loopback):
join, register, reuse and expiry refused, users cannot take agent Workloads, revoke, and
everything survives a restart on the same data directory."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner, Result

from gossamer.cli.main import app as cli
from gossamer.model import Workload
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.controlplane import api_client, apply_manifests, running_control_plane
from gossamer.testing.mesh import service, workload
from gossamer.types import ResourceKey

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

HOST_A = "127.0.0.2"


def cart(name: str = "cart-1", port: int = 15006) -> dict[str, Any]:
    return workload(name, "cart", HOST_A, port, 8080, host="vm-a")


def workloads_of(app: ControlPlaneApp) -> dict[str, Workload]:
    assert app.plane.model is not None
    return {ns + "/" + name: w for (ns, name), w in app.plane.model.workloads.items()}


async def gossamer(server: str, *args: str) -> Result:
    runner = CliRunner(env={"GOSSAMER_SERVER": server, "COLUMNS": "250", "NO_COLOR": "1"})
    return await asyncio.to_thread(lambda: runner.invoke(cli, list(args)))


async def join(c: httpx.AsyncClient, host: str, ttl: int = 600) -> tuple[str, str, str]:
    token = (
        await c.post(
            "/v1/tokens",
            json={"ttlSeconds": ttl, "scope": {"anyService": True, "anyNamespace": True}},
        )
    ).json()["token"]
    joined = await c.post("/v1/agents/join", json={"token": token, "host": host})
    assert joined.status_code == 200, joined.text
    return token, joined.json()["agentId"], joined.json()["credential"]


async def test_join_register_refusals_and_revoke(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app, api_client(app, timeout=10) as c:
        await apply_manifests(app, [service("cart")], wait=False)
        token, agent_id, credential = await join(c, "vm-a")
        auth = {"Authorization": f"Bearer {credential}"}

        put = await c.put(
            f"/v1/agents/{agent_id}/workloads", json={"workloads": [cart()]}, headers=auth
        )
        assert put.status_code == 200, put.text
        registered = workloads_of(app)["default/cart-1"]
        assert registered.metadata.labels == {
            "gossamer.dev/managed-by": "agent",
            "gossamer.dev/agent": agent_id,
        }

        reused = await c.post("/v1/agents/join", json={"token": token, "host": "vm-b"})
        assert reused.status_code == 401
        assert "already used" in reused.json()["errors"][0]

        short = (
            await c.post(
                "/v1/tokens",
                json={"ttlSeconds": 1, "scope": {"anyService": True, "anyNamespace": True}},
            )
        ).json()["token"]

        async def expired() -> bool:
            tokens = (await c.get("/v1/tokens")).json()["items"]
            return any(t["state"] == "expired" for t in tokens)

        await wait_until(expired, timeout=15, what="the 1 s token to expire")
        late = await c.post("/v1/agents/join", json={"token": short, "host": "vm-b"})
        assert late.status_code == 401
        assert "expired at" in late.json()["errors"][0]

        file = tmp_path / "steal.yaml"
        file.write_text(yaml.safe_dump({**cart(), "spec": {**cart()["spec"], "weight": 5}}))
        stolen = await gossamer(app.api_url, "apply", "-f", str(file))
        assert stolen.exit_code == 1
        assert f"registered by agent {agent_id}" in stolen.stderr
        assert workloads_of(app)["default/cart-1"].spec.weight == 1

        revoked = await gossamer(app.api_url, "agents", "revoke", "vm-a")
        assert revoked.exit_code == 0, revoked.output
        assert workloads_of(app) == {}
        refused = await c.get(f"/v1/agents/{agent_id}/env", headers=auth)
        assert refused.status_code == 401
        assert "was revoked" in refused.json()["errors"][0]


async def test_tokens_and_agents_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "cp"
    async with running_control_plane(data) as app, api_client(app, timeout=10) as c:
        await apply_manifests(app, [service("cart")], wait=False)
        used, agent_id, credential = await join(c, "vm-a")
        spare = (
            await c.post(
                "/v1/tokens",
                json={"ttlSeconds": 600, "scope": {"anyService": True, "anyNamespace": True}},
            )
        ).json()["token"]
        auth = {"Authorization": f"Bearer {credential}"}
        put = await c.put(
            f"/v1/agents/{agent_id}/workloads", json={"workloads": [cart()]}, headers=auth
        )
        assert put.status_code == 200, put.text
        agents_before = (await c.get("/v1/agents")).json()["items"]
        tokens_before = (await c.get("/v1/tokens")).json()["items"]

    async with running_control_plane(data) as app, api_client(app, timeout=10) as c:
        agents_after = (await c.get("/v1/agents")).json()["items"]
        # heartbeats live in memory (docs/agent-protocol.md): after a restart lastSeen is
        # the join time again, until the agent's next call
        assert [a["lastSeen"] for a in agents_after] == [b["joinedAt"] for b in agents_before]
        assert all(b["lastSeen"] >= b["joinedAt"] for b in agents_before), agents_before
        drop = "lastSeen"
        assert [{k: v for k, v in a.items() if k != drop} for a in agents_after] == [
            {k: v for k, v in b.items() if k != drop} for b in agents_before
        ]
        assert (await c.get("/v1/tokens")).json()["items"] == tokens_before
        me = await c.get(f"/v1/agents/{agent_id}", headers=auth)
        assert me.status_code == 200, me.text
        assert me.json()["workloads"] == ["default/cart-1"]
        again = await c.post("/v1/agents/join", json={"token": used, "host": "vm-b"})
        assert again.status_code == 401
        spare_join = await c.post("/v1/agents/join", json={"token": spare, "host": "vm-b"})
        assert spare_join.status_code == 200, spare_join.text
        user = await c.post("/v1/apply", json={"manifests": [cart()]})
        assert user.status_code == 409
        assert app.plane.model is not None
        assert ResourceKey("Workload", "default", "cart-1") in app.plane.model.resources
