"""Slow-header clients cannot starve the control plane (issue 7, R4).

A ``gossamer control-plane`` process is flooded with 1,000 connections that each dribble a
byte of a request line now and then and never finish their headers. While they are open, a
new Envoy must get its configuration over xDS and ``/readyz`` must answer; the server must
close every slow connection by its header deadline. With the process's file descriptors
lowered to 512 (soft and hard, so raising the soft limit cannot undo it) the flood is larger
than the fds the process has: the API must keep within its share and not starve xDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.testing.controlplane import admin_token
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GOSSAMER = str(Path(sys.executable).with_name("gossamer"))
SLOW_CONNECTIONS = 1000
HEADER_TIMEOUT = 3.0
#: a request that never ends its headers: one byte of it every DRIBBLE_S, then silence
DRIBBLE = b"GET /healthz HTTP/1.1\r\nHost: cp\r\nX-Slow: " + b"a" * 40
DRIBBLE_S = 0.5
#: run a command with RLIMIT_NOFILE lowered (soft and hard) to argv[1]
LIMITED = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"
)


class SlowClient:
    """One connection that sends a byte of ``DRIBBLE`` every ``DRIBBLE_S`` until closed."""

    def __init__(self) -> None:
        self.opened = 0.0
        self.closed: float | None = None
        self.refused = False

    async def run(self, api: tuple[str, int]) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*api), 10)
        except (OSError, TimeoutError):
            self.refused = True
            return
        self.opened = time.monotonic()
        try:
            for i in range(len(DRIBBLE)):
                writer.write(DRIBBLE[i : i + 1])
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(4096), DRIBBLE_S) == b"":
                        break
                if reader.at_eof():
                    break
            else:
                # every byte sent and still open: wait (bounded) for the server to close it
                with contextlib.suppress(TimeoutError):
                    while await asyncio.wait_for(reader.read(4096), 30):
                        pass
        except OSError:
            pass
        finally:
            self.closed = time.monotonic()
            writer.close()


async def start_control_plane(tmp_path: Path, fd_limit: int | None) -> asyncio.subprocess.Process:
    command = [
        GOSSAMER, "control-plane", "--data-dir", str(tmp_path / "data"),
        "--api-addr", "127.0.0.1:0", "--xds-addr", f"127.0.0.1:{free_port()}",
        "--api-tls", "off",  # the slow clients dribble plain HTTP (TLS: test_api_tls.py)
        "--xds-tls", "optional",  # its Envoy has no certificate: the plaintext xDS port
        "--api-header-timeout", str(HEADER_TIMEOUT),
    ]  # fmt: skip
    if fd_limit is not None:
        command = [sys.executable, "-c", LIMITED, str(fd_limit), *command]
    return await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=(tmp_path / "cp.log").open("wb"),
    )


async def addresses(proc: asyncio.subprocess.Process) -> tuple[tuple[str, int], tuple[str, int]]:
    """The API and xDS addresses from the control plane's start-up line."""
    assert proc.stdout is not None
    # (the control plane starts its children first: seconds on a loaded CI machine)
    line = (await asyncio.wait_for(proc.stdout.readline(), 90)).decode()
    assert "API http://" in line, f"unexpected start-up output: {line!r}"
    api = line.split("API http://", 1)[1].split()[0]
    xds = line.split("xDS ", 1)[1].split()[0]
    api_host, api_port = api.rsplit(":", 1)
    xds_host, xds_port = xds.rsplit(":", 1)
    return (api_host, int(api_port)), (xds_host, int(xds_port))


def enough_fds_for_the_flood() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = SLOW_CONNECTIONS + 500
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"this test opens {SLOW_CONNECTIONS} connections; RLIMIT_NOFILE {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


@pytest.mark.parametrize("fd_limit", [None, 512], ids=["default-fds", "512-fds"])
async def test_xds_and_readyz_serve_while_slow_clients_flood_the_api(
    tmp_path: Path, fd_limit: int | None
) -> None:
    enough_fds_for_the_flood()
    proc = await start_control_plane(tmp_path, fd_limit)
    try:
        api, xds = await addresses(proc)
        base = f"http://{api[0]}:{api[1]}"
        token = admin_token(tmp_path / "data")  # as the operator reads it
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=auth) as client:
            reply = await client.post(
                "/v1/apply",
                json={"manifests": [service("web"), workload("web-1", "web", "127.0.0.2",
                                                             free_port("127.0.0.2"), 9)]},
            )  # fmt: skip
            assert reply.status_code == 200, reply.text

        slow = [SlowClient() for _ in range(SLOW_CONNECTIONS)]
        async with asyncio.TaskGroup() as tg:
            for c in slow:
                tg.create_task(c.run(api))
            # every slow client has connected (or given up) and none is done yet
            await wait_until(
                lambda: all(c.opened or c.refused for c in slow),
                timeout=30,
                what="the slow clients to connect",
            )
            flood_started = time.monotonic()

            # a new Envoy gets its configuration over xDS while the flood is on
            proxy = ProxyIdentity("sidecar", "default", "web-1")
            admin = ("127.0.0.1", free_port())
            envoy = EnvoyProcess(ads_bootstrap(proxy, xds, admin), name="web-1")
            async with envoy:

                async def has_config() -> bool:
                    dump = await envoy.config_dump(resource="dynamic_listeners")
                    return "inbound|http" in str(dump)

                await envoy.wait_for(has_config, 20, what="Envoy to get its inbound listener")
            assert time.monotonic() - flood_started < HEADER_TIMEOUT + 20

            # /readyz answers on a fresh connection while slow clients are still dribbling
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text

            # every slow connection is closed by the server by its header deadline
            await wait_until(
                lambda: all(c.closed is not None for c in slow),
                timeout=HEADER_TIMEOUT + 15,
                what="the server to close every slow connection",
            )
        held = max(c.closed - c.opened for c in slow if c.closed is not None and c.opened)
        assert held < HEADER_TIMEOUT + 2, f"a slow connection was held {held:.1f} s"
        assert proc.returncode is None, "the control plane exited during the flood"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 15)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    log = (tmp_path / "cp.log").read_text(errors="replace")
    # no error is logged in a tight loop (the defect logged 385k tracebacks in 30 s)
    assert len(log.splitlines()) < 200, f"{len(log.splitlines())} log lines:\n{log[-3000:]}"
