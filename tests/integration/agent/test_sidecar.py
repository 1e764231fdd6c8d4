"""A sidecar that does not come up is never left running: not on a timeout, not when the
agent stops (cancels) while it starts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2

from gossamer.agent.envoy import Sidecar
from gossamer.agent.process import is_running, start_time
from gossamer.errors import EnvoyError
from gossamer.polling import wait_until
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def _silent_envoy(tmp_path: Path) -> str:
    """A stand-in binary that runs but whose admin API never answers."""
    binary = tmp_path / "silent-envoy"
    binary.write_text("#!/bin/sh\nexec sleep 120\n")
    binary.chmod(0o755)
    return str(binary)


def _bootstrap(admin_port: int) -> bootstrap_pb2.Bootstrap:
    bootstrap = bootstrap_pb2.Bootstrap()
    bootstrap.admin.address.socket_address.address = "127.0.0.1"
    bootstrap.admin.address.socket_address.port_value = admin_port
    return bootstrap


async def test_a_start_cancelled_while_waiting_for_the_admin_api_leaves_nothing(
    tmp_path: Path,
) -> None:
    probed = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        probed.set()  # the sidecar is waiting for its admin API: cancel it now
        await reader.read()
        writer.close()

    admin = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        port = admin.sockets[0].getsockname()[1]
        start = asyncio.create_task(
            Sidecar.start(
                "default/web-1",
                _silent_envoy(tmp_path),
                _bootstrap(port),
                tmp_path,
                drain_seconds=1,
            )
        )
        await asyncio.wait_for(probed.wait(), 30)
        pid = int((tmp_path / "envoy.pid").read_text())
        started = start_time(pid)
        assert started is not None
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start
        await wait_until(
            lambda: not is_running(pid, started),
            timeout=15,
            what=f"the cancelled sidecar's process {pid} to be gone",
        )
    finally:
        admin.close()


async def test_a_start_that_times_out_leaves_nothing(tmp_path: Path) -> None:
    port = free_port()  # nobody answers there
    with pytest.raises(EnvoyError, match="did not open its admin API"):
        await Sidecar.start(
            "default/web-1",
            _silent_envoy(tmp_path),
            _bootstrap(port),
            tmp_path,
            drain_seconds=1,
            timeout=1.0,
        )
    pid = int((tmp_path / "envoy.pid").read_text())
    assert start_time(pid) is None
