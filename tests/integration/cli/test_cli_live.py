"""The CLI against a real control plane with a real Envoy connected."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import yaml

from gossamer.testing import (
    HttpBackend,
    apply_manifests,
    free_port,
    mesh_envoy,
    running_control_plane,
    wait_until,
)
from gossamer.testing.controlplane import TOKEN_ENV
from gossamer.testing.mesh import service, workload
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GOSSAMER = str(Path(sys.executable).with_name("gossamer"))


async def cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        GOSSAMER,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        # the operator token running_control_plane exported, as a user exports it
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "GOSSAMER_TOKEN": os.environ[TOKEN_ENV]},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_apply_wait_get_proxy_status_and_config(tmp_path: Path) -> None:
    async with (
        HttpBackend("reviews-v1", host="127.0.0.3") as v1,
        running_control_plane(tmp_path / "cp") as app,
    ):
        server = ("--server", app.api_url)
        await apply_manifests(
            app,
            [
                service("reviews", 9080),
                workload(
                    "reviews-1", "reviews", "127.0.0.3", free_port("127.0.0.3"), v1.address[1]
                ),
            ],
            wait=False,
        )
        proxy = ProxyIdentity("sidecar", "default", "reviews-1")
        async with mesh_envoy(app, proxy):
            await wait_until(
                lambda: any(p.state == "synced" for p in app.plane.proxy_status()),
                timeout=30,
                what="the proxy to sync",
            )
            # apply --wait through the CLI: returns once the proxy ACKed the new weight
            manifest = workload(
                "reviews-1", "reviews", "127.0.0.3", free_port("127.0.0.3"), v1.address[1], weight=5
            )
            f = tmp_path / "w.yaml"
            f.write_text(yaml.safe_dump(manifest))
            code, out = await cli("apply", "-f", str(f), "--wait", *server)
            assert code == 0, out
            code, out = await cli("get", "workloads", "-o", "json", *server)
            assert code == 0, out
            assert "reviews-1" in out
            code, out = await cli("proxy-status", *server)
            assert code == 0, out
            assert "reviews-1" in out and "synced" in out
            # an Envoy no agent runs: the control plane never reads its admin API itself
            # (tests/integration/agent/test_config_dumps.py reads an agent-run one)
            code, out = await cli("proxy-config", "reviews-1", "--timeout", "1", *server)
            assert code == 1, out
            assert "no host runs sidecar~default~reviews-1" in out

            # a bad file: exit 1, the field named, nothing applied
            bad = tmp_path / "bad.yaml"
            bad.write_text(
                yaml.safe_dump(workload("reviews-1", "reviews", "127.0.0.3", 1, 2, weight=500))
            )
            code, out = await cli("apply", "-f", str(bad), *server)
            assert code == 1
            assert "bad.yaml: Workload default/reviews-1: spec.weight: must be 1..128" in out
