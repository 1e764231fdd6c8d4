"""``gossamer control-plane`` started with no xDS flag serves xDS over mTLS only (issue 9:
"an anonymous xDS client gets nothing"): the process, as an operator starts it, with a
proxy in the model that an anonymous client names. A certificate asking for another
host's node id is refused in every mode (``tests/integration/xds/test_xds_tls.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from gossamer.agent.trust import client_context
from gossamer.testing.ads_client import AdsClient, connect
from gossamer.testing.controlplane import admin_token
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity
from gossamer.xds.resources import ResourceType

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GOSSAMER = str(Path(sys.executable).parent / "gossamer")
WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web")


@contextlib.asynccontextmanager
async def default_control_plane(tmp_path: Path, xds: str) -> AsyncIterator[tuple[str, str]]:
    """The command with only where to keep data and listen; yields its start-up line and
    API URL."""
    proc = await asyncio.create_subprocess_exec(
        GOSSAMER, "control-plane", "--data-dir", str(tmp_path / "data"),
        "--api-addr", "127.0.0.1:0", "--xds-addr", xds,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=(tmp_path / "cp.log").open("wb"),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        assert "API https://" in line, f"unexpected start-up output: {line!r}"
        yield line, line.split("API ", 1)[1].split()[0]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def refused(client: AdsClient) -> grpc.StatusCode | None:
    await client.wait_for(lambda c: c.closed, 10, "the stream ending")
    assert isinstance(client.error, grpc.aio.AioRpcError), client.error
    return client.error.code()


async def test_an_anonymous_xds_client_gets_nothing_from_a_default_control_plane(
    tmp_path: Path,
) -> None:
    xds = ("127.0.0.1", free_port())
    async with default_control_plane(tmp_path, f"{xds[0]}:{xds[1]}") as (line, api):
        roots = (tmp_path / "data" / "ca" / "root-cert.pem").read_bytes()
        token = admin_token(tmp_path / "data")
        async with httpx.AsyncClient(
            base_url=api,
            verify=client_context(roots),
            headers={"Authorization": f"Bearer {token}"},
            trust_env=False,
            timeout=10,
        ) as client:
            manifests = [service("web"), workload("web-1", "web", "127.0.0.2", 15001, 8080)]
            reply = await client.post("/v1/apply", json={"manifests": manifests})
            assert reply.status_code == 200, reply.text
        async with connect(WEB_1, xds) as anonymous:
            assert await refused(anonymous) == grpc.StatusCode.UNAVAILABLE
        assert anonymous.summary() == {t.short: [] for t in ResourceType}
        # required: --xds-addr is the one xDS port, mTLS; no plaintext port is served
        assert f"xDS mTLS {xds[0]}:{xds[1]} " in line and " xDS 127." not in line, line
