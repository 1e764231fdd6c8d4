"""``gossamer rollback --to REVISION`` against a running control plane: a changed and a
deleted Route come back as one new change, shown first; a Workload an agent registered
afterwards stays."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from gossamer.cli.main import app as cli
from gossamer.model import parse_manifest
from gossamer.testing import apply_yaml, running_control_plane
from gossamer.types import OWNER_LABEL, ResourceKey

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

MESH = """
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: shop}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: cart}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {name: edge}
spec: {port: 18080}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: edge}
spec:
  gateways: [edge]
  rules: [{destinations: [{service: shop}]}]
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: extra}
spec:
  gateways: [edge]
  hosts: [extra.example]
  rules: [{destinations: [{service: cart}]}]
"""
CHANGED = """
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: edge}
spec:
  gateways: [edge]
  rules: [{destinations: [{service: cart}]}]
"""
AGENTS = {
    "apiVersion": "gossamer.dev/v1",
    "kind": "Workload",
    "metadata": {"name": "cart-1", "labels": {OWNER_LABEL: "agent-1"}},
    "spec": {
        "service": "cart",
        "address": "127.0.0.3",
        "sidecar": False,
        "ports": [{"port": 8080}],
    },
}


async def run(server: str, *args: str) -> Result:
    runner = CliRunner(env={"GOSSAMER_SERVER": server, "COLUMNS": "250", "NO_COLOR": "1"})
    return await asyncio.to_thread(lambda: runner.invoke(cli, ["rollback", *args]))


async def test_rollback_restores_routes_and_keeps_the_agents_workload(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        target = await apply_yaml(app, MESH, wait=False)
        await apply_yaml(app, CHANGED, wait=False)
        await app.plane.delete([ResourceKey("Route", "default", "extra")])
        await app.plane.apply([parse_manifest(AGENTS)], owner="agent-1")
        before = await app.store.revision()

        shown = await run(app.api_url, "--to", str(target), "--dry-run")
        assert shown.exit_code == 0, shown.output
        assert (
            f"rollback to revision {target} (the store is at revision {before}): " in shown.stdout
        )
        assert "1 to create, 1 to change, 0 to delete" in shown.stdout
        assert "create Route default/extra" in shown.stdout
        assert "change Route default/edge" in shown.stdout
        assert "-    - service: cart" in shown.stdout and "+    - service: shop" in shown.stdout
        assert "keep Workload default/cart-1: registered by agent agent-1" in shown.stdout
        assert await app.store.revision() == before  # a dry run changes nothing

        refused = await run(app.api_url, "--to", str(target))  # no terminal, no --yes
        assert refused.exit_code == 1 and "pass --yes" in refused.stderr, refused.output
        assert await app.store.revision() == before

        done = await run(app.api_url, "--to", str(target), "--yes", "-o", "json")
        assert done.exit_code == 0, done.output
        body = json.loads(done.stdout)
        assert body["applied"] and body["revision"] == before + 1  # one new change
        assert await app.store.revision() == before + 1
        edge = await app.plane.get(ResourceKey("Route", "default", "edge"))
        assert edge["spec"]["rules"][0]["destinations"][0]["service"] == "shop"
        assert await app.store.get(ResourceKey("Route", "default", "extra")) is not None
        kept = await app.store.get(ResourceKey("Workload", "default", "cart-1"))
        assert kept is not None and kept.manifest["metadata"]["labels"] == {OWNER_LABEL: "agent-1"}

        again = await run(app.api_url, "--to", str(target), "--dry-run")
        assert again.exit_code == 0 and "0 to create, 0 to change, 0 to delete" in again.stdout

        future = await run(app.api_url, "--to", str(before + 100), "--yes")
        assert future.exit_code == 1, future.output
        assert f"toRevision: revision {before + 100} is in the future" in future.stderr
