"""``gossamer gateway`` as a real process: it waits for its Gateway, serves and logs, brings
Envoy back when it dies, drains on SIGTERM without failing a request in flight, and fails
with one clear line when it cannot run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.integration.gateway.gateways import wait_served

from gossamer.envoy.process import pid_alive
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GOSSAMER = shutil.which("gossamer", path=str(Path(sys.executable).parent)) or "gossamer"
_RUNNING = re.compile(r"Envoy running \(pid (\d+)")


def mesh(backend: tuple[str, int], gw_port: int) -> str:
    return f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: shop}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: shop-1}}
spec: {{service: shop, address: {backend[0]}, sidecar: false, ports: [{{port: {backend[1]}}}]}}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: {gw_port}}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: edge}}
spec:
  gateways: [edge]
  rules: [{{destinations: [{{service: shop}}]}}]
"""


class GatewayCli:
    def __init__(self, proc: asyncio.subprocess.Process, out: Path, err: Path) -> None:
        self.proc, self.out, self.err = proc, out, err

    def stderr(self) -> str:
        return self.err.read_text()

    def envoy_pids(self) -> list[int]:
        return [int(m) for m in _RUNNING.findall(self.stderr())]

    def access_log(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]


@contextlib.asynccontextmanager
async def gateway_cli(tmp_path: Path, *args: str) -> AsyncIterator[GatewayCli]:
    out, err = tmp_path / "gateway.out", tmp_path / "gateway.err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = await asyncio.create_subprocess_exec(
            GOSSAMER,
            "gateway",
            *args,
            stdin=subprocess.DEVNULL,
            stdout=o,
            stderr=e,
            start_new_session=True,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"},
        )
    try:
        yield GatewayCli(proc, out, err)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


@pytest.mark.slow
async def test_waits_for_its_gateway_serves_restarts_envoy_and_drains_on_sigterm(
    tmp_path: Path,
) -> None:
    async with (
        HttpBackend("shop", host="127.0.0.3") as shop,
        running_control_plane(tmp_path / "cp") as app,
    ):
        gw_port = free_port()
        url = f"http://127.0.0.1:{gw_port}"
        xds = f"{app.xds_addr[0]}:{app.xds_addr[1]}"
        async with (
            gateway_cli(
                tmp_path,
                "--name",
                "edge",
                "--server",
                app.api_url,
                "--xds-addr",
                xds,
                "--workdir",
                str(tmp_path / "gw"),
                "--drain-seconds",
                "10",
            ) as gw,
            httpx.AsyncClient(timeout=20, trust_env=False) as client,
        ):
            # No Gateway yet: said once, and Envoy runs and waits for it.
            await wait_until(lambda: gw.envoy_pids(), timeout=30, what="Envoy started")
            assert "there is no Gateway default/edge yet" in gw.stderr()
            await apply_yaml(app, mesh(shop.address, gw_port), wait=False)
            await wait_served(client, url + "/")

            r = await client.get(url + "/hello")
            request_id = r.json()["headers"]["x-request-id"]
            await wait_until(
                lambda: any(e["request_id"] == request_id for e in gw.access_log()),
                timeout=20,
                what="the request's access-log line on stdout",
            )

            # Envoy dies: the runner starts a new one, which gets its config again.
            (first,) = gw.envoy_pids()
            os.kill(first, signal.SIGKILL)
            await wait_until(lambda: len(gw.envoy_pids()) == 2, timeout=30, what="Envoy restarted")
            second = gw.envoy_pids()[1]
            assert second != first
            await wait_served(client, url + "/")

            # SIGTERM while a request is in flight: it completes, then everything stops.
            slow = asyncio.create_task(client.get(url + "/delay/1500"))
            await wait_until(
                lambda: shop.requests_by_path["/delay/1500"] == 1,
                timeout=20,
                what="the slow request reached the backend",
            )
            gw.proc.send_signal(signal.SIGTERM)
            r = await slow
            assert r.status_code == 200 and r.json()["path"] == "/delay/1500"
            assert await asyncio.wait_for(gw.proc.wait(), 30) == 0
            assert not pid_alive(second)
            assert "draining" in gw.stderr() and "stopped" in gw.stderr()
            with pytest.raises(httpx.TransportError):
                await client.get(url + "/", headers={"connection": "close"})


async def _fails(tmp_path: Path, *args: str) -> str:
    async with gateway_cli(tmp_path, *args) as gw:
        code = await asyncio.wait_for(gw.proc.wait(), 60)
        err = gw.stderr()
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return errors[0]


UNREACHABLE = ["--server", "http://127.0.0.1:9", "--xds-addr", "127.0.0.1:9"]


async def test_missing_envoy_binary_is_one_clear_line(tmp_path: Path) -> None:
    line = await _fails(
        tmp_path, "--name", "edge", *UNREACHABLE, "--envoy", str(tmp_path / "no-such-envoy")
    )
    assert "no-such-envoy" in line and "--envoy" in line


async def test_unsupported_envoy_version_is_refused_at_once(tmp_path: Path) -> None:
    """An old envoy is never started: one ``--version`` run, then one clear line."""
    calls = tmp_path / "calls"
    fake = tmp_path / "old-envoy"
    fake.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\n'
        "echo 'envoy  version: 0123abcd/1.31.2/Clean/RELEASE/BoringSSL'\n"
    )
    fake.chmod(0o755)
    line = await _fails(tmp_path, "--name", "edge", *UNREACHABLE, "--envoy", str(fake))
    assert "Envoy 1.31.2" in line and "1.40" in line and "--envoy" in line, line
    assert calls.read_text().splitlines() == ["--version"]


async def test_admin_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        line = await _fails(
            tmp_path, "--name", "edge", *UNREACHABLE, "--admin-addr", f"127.0.0.1:{port}"
        )
    assert f"--admin-addr (omit it to pick a free port): 127.0.0.1:{port} is held by pid" in line


async def test_bad_name_names_the_field(tmp_path: Path) -> None:
    async with gateway_cli(tmp_path, "--name", "Not_A_Name", *UNREACHABLE) as gw:
        assert await asyncio.wait_for(gw.proc.wait(), 60) == 1
        assert gw.stderr().startswith("name: ")


async def test_gateway_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            port = sock.getsockname()[1]
            await apply_yaml(app, mesh(("127.0.0.3", 1), port), wait=False)
            line = await _fails(
                tmp_path,
                "--name",
                "edge",
                "--server",
                app.api_url,
                "--xds-addr",
                f"{app.xds_addr[0]}:{app.xds_addr[1]}",
            )
    assert f"Gateway default/edge (its spec.port): 127.0.0.1:{port} is held by pid" in line
