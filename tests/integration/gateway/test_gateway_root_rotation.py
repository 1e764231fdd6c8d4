"""A gateway host follows a root rotation at once, like an agent: the heartbeat answer's
``caVersion`` differs from the one its certificate was issued under, so it renews within
a heartbeat (not at half its certificate's life, 30 minutes here) and its Envoy ACKs the
trust bundle with both roots. Real control plane, ``gossamer gateway`` process and Envoy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.agent.agents import GOSSAMER, run_cli

from gossamer.agent.identity.rotation import RENEW_SOON_SPREAD
from gossamer.agent.runner import HEARTBEAT_S
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.controlplane import api_client, apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(240)]

MANIFESTS = """
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{trustDomain: shop.local, mtls: {{certificateTTL: 1h}}}}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: {port}}}
"""


@contextlib.asynccontextmanager
async def gateway(app: ControlPlaneApp, tmp_path: Path, token: str) -> AsyncIterator[Path]:
    """``gossamer gateway --name edge --token TOKEN`` (xDS: what was advertised at join);
    yields its state dir."""
    state = tmp_path / "gw-state"
    with (tmp_path / "gateway.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            GOSSAMER, "gateway", "--name", "edge", "--server", app.api_url,
            "--token", token, "--state-dir", str(state),
            "--drain-seconds", "1", "--concurrency", "1",
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
    try:
        yield state
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


def status(state: Path) -> dict[str, Any]:
    path = state / "status.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def held(state: Path) -> tuple[str | None, str | None, str | None]:
    """(certificate serial, serial its Envoy ACKed, trust-bundle version it ACKed)."""
    found = status(state)
    mine = found.get("identities", {}).get("default/edge", {})
    acked = (found.get("sds") or {}).get("acked", {})
    return mine.get("serial"), acked.get("identity"), acked.get("trust-bundle")


async def test_a_gateway_renews_at_once_when_the_root_rotation_starts(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        await apply_yaml(app, MANIFESTS.format(port=free_port()), wait=False)
        code, out = await run_cli(
            "token", "create", "--gateway", "edge", "--server", app.api_url, "--ttl", "10m"
        )
        assert code == 0, out
        async with gateway(app, tmp_path, out.splitlines()[0].strip()) as state:
            await wait_until(
                lambda: held(state)[0] is not None and held(state)[0] == held(state)[1],
                timeout=90,
                what="the gateway's Envoy to ACK its first certificate",
            )
            first, _, first_bundle = held(state)
            async with api_client(app) as client:
                started = await client.post("/v1/ca/rotation")
            assert started.status_code in (200, 201, 202), started.text

            # the next heartbeat answer names the new CA version: renewed at once, and its
            # Envoy holds the new certificate and the bundle with both roots
            def moved() -> bool:
                serial, acked, bundle = held(state)
                return serial != first and acked == serial and bundle != first_bundle

            await wait_until(
                moved,
                timeout=HEARTBEAT_S + RENEW_SOON_SPREAD + 20,
                what="the gateway to renew after the rotation started",
            )
            kept = json.loads((state / "identity" / "default%2Fedge.json").read_text())
            assert kept["trustBundle"].count("BEGIN CERTIFICATE") == 2
