"""EnvoyProcess: start, admin API, failures with Envoy's log, and no Envoy left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2

from gossamer.envoy.process import pid_alive
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.errors import ConfigError, EnvoyError
from gossamer.polling import wait_until
from gossamer.testing import resources
from gossamer.translate.bootstrap import ads_bootstrap, static_bootstrap
from gossamer.types import ProxyIdentity

pytestmark = pytest.mark.integration


def _bootstrap() -> bootstrap_pb2.Bootstrap:
    return static_bootstrap(clusters=[resources.static_cluster("web", [("127.0.0.2", 9)])])


@pytest.mark.asyncio
async def test_start_admin_and_clean_exit(tmp_path: Path) -> None:
    async with EnvoyProcess(_bootstrap(), workdir=tmp_path) as envoy:
        pid = envoy.pid
        assert pid_alive(pid)
        host, port = envoy.admin_address or ("", 0)
        assert host == "127.0.0.1" and port > 0
        assert (await envoy.admin_get("/ready")).strip() == "LIVE"
        stats = await envoy.stats()
        assert stats["server.live"] == 1
        assert stats["cluster_manager.active_clusters"] == 1
        dump = await envoy.config_dump(resource="static_clusters")
        assert [c["cluster"]["name"] for c in dump["configs"]] == ["web"]
        assert (await envoy.admin.server_info())["state"] == "LIVE"
        clusters = (await envoy.admin.clusters())["cluster_statuses"]
        assert [c["name"] for c in clusters] == ["web"]
        assert await envoy.admin.open_connections() == 0
    assert envoy.returncode == 0
    assert not pid_alive(pid)
    assert (tmp_path / "envoy.log").exists()  # a given workdir is kept


@pytest.mark.asyncio
async def test_quitquitquit_exits_cleanly() -> None:
    async with EnvoyProcess(_bootstrap()) as envoy:
        await envoy.admin.quitquitquit()
        assert await asyncio.wait_for(envoy.wait_exit(), 30) == 0
        with pytest.raises(EnvoyError, match="exited with status 0\n--- last lines of"):
            await envoy.admin.stats()


@pytest.mark.asyncio
async def test_temporary_workdir_is_removed() -> None:
    async with EnvoyProcess(_bootstrap()) as envoy:
        workdir = envoy.log_path.parent
        assert workdir.is_dir()
    assert not workdir.exists()


@pytest.mark.asyncio
async def test_several_envoys_run_side_by_side() -> None:
    async with EnvoyProcess(_bootstrap()) as one, EnvoyProcess(_bootstrap()) as two:
        assert one.base_id != two.base_id
        assert one.admin_address != two.admin_address
        assert (await one.stats())["server.live"] == (await two.stats())["server.live"] == 1


@pytest.mark.asyncio
async def test_a_rejected_bootstrap_raises_with_envoys_log_and_leaves_nothing() -> None:
    bootstrap = _bootstrap()
    bootstrap.static_resources.clusters.append(bootstrap.static_resources.clusters[0])
    envoy = EnvoyProcess(bootstrap)
    with pytest.raises(EnvoyError) as info:
        await envoy.start()
    assert "exited with status 1 while starting" in str(info.value)
    assert "duplicate cluster 'web'" in str(info.value)
    assert not pid_alive(envoy.pid)


@pytest.mark.asyncio
async def test_an_error_inside_the_block_still_stops_envoy() -> None:
    with pytest.raises(RuntimeError, match="test failed"):
        async with EnvoyProcess(_bootstrap()) as envoy:
            pid = envoy.pid
            raise RuntimeError("test failed")
    assert not pid_alive(pid)


@pytest.mark.asyncio
async def test_cancellation_inside_the_block_still_stops_envoy() -> None:
    started = asyncio.Event()
    pids: list[int] = []

    async def run() -> None:
        async with EnvoyProcess(_bootstrap()) as envoy:
            pids.append(envoy.pid)
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(run())
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not pid_alive(pids[0])


@pytest.mark.asyncio
async def test_a_killed_envoy_is_reported_by_wait_for() -> None:
    async with EnvoyProcess(_bootstrap()) as envoy:
        assert await envoy.kill() == -signal.SIGKILL
        assert not envoy.running
        with pytest.raises(EnvoyError, match="exited with status -9 while waiting for never"):
            await envoy.wait_for(lambda: False, timeout=30, what="never")


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # accept, never answer
    writer.close()


@pytest.mark.asyncio
async def test_a_never_ready_envoy_times_out_with_its_log() -> None:
    # An ADS Envoy whose control plane accepts but never answers stays initializing.
    silent = await asyncio.start_server(_hold, "127.0.0.1", 0)
    try:
        node = ProxyIdentity("sidecar", "default", "lonely", service="lonely")
        xds = silent.sockets[0].getsockname()[:2]
        bootstrap = ads_bootstrap(node, xds, ("127.0.0.1", 0))
        envoy = EnvoyProcess(bootstrap, start_timeout=1.0)
        with pytest.raises(EnvoyError, match=r"did not become ready.*/ready") as info:
            await envoy.start()
        assert "--- last lines of" in str(info.value)
        assert not pid_alive(envoy.pid)

        async with EnvoyProcess(bootstrap, wait_ready=False) as waiting:
            assert not await waiting.admin.ready()
            assert await waiting.admin.answers()
            with pytest.raises(EnvoyError, match=r"answered 503: (PRE_)?INITIALIZING"):
                await waiting.admin_get("/ready")
    finally:
        silent.close()


_ORPHAN_SCRIPT = """
import asyncio, sys
from gossamer.testing import resources
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.translate.bootstrap import ads_bootstrap, static_bootstrap
from gossamer.types import ProxyIdentity

async def main():
    bootstrap = static_bootstrap(clusters=[resources.static_cluster("w", [("127.0.0.2", 9)])])
    async with EnvoyProcess(bootstrap) as envoy:
        print(envoy.pid, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.mark.asyncio
async def test_envoy_dies_with_its_parent() -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ORPHAN_SCRIPT, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        line = await asyncio.wait_for(parent.stdout.readline(), 60)
        envoy_pid = int(line)
        assert pid_alive(envoy_pid)
        os.kill(parent.pid, signal.SIGKILL)  # no chance to clean up
        await parent.wait()
        await wait_until(
            lambda: not pid_alive(envoy_pid), timeout=30, what=f"orphaned envoy {envoy_pid} to die"
        )
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()


def test_bad_settings_are_rejected_before_anything_starts() -> None:
    with pytest.raises(ConfigError, match="concurrency must be >= 1"):
        EnvoyProcess(_bootstrap(), concurrency=0)
    with pytest.raises(ConfigError, match="log_level 'loud' is not one of"):
        EnvoyProcess(_bootstrap(), log_level="loud")


@pytest.mark.asyncio
async def test_an_envoy_that_cannot_start_says_why_before_its_banner() -> None:
    # Envoy's start-up banner lists ~100 extensions; the line that says why it exited must
    # not be pushed out of the report by them
    taken = await asyncio.start_server(_hold, "127.0.0.1", 0)
    try:
        admin = taken.sockets[0].getsockname()[:2]
        bootstrap = static_bootstrap(
            clusters=[resources.static_cluster("web", [("127.0.0.2", 9)])], admin_address=admin
        )
        with pytest.raises(EnvoyError, match="exited with status 1") as info:
            await EnvoyProcess(bootstrap, log_level="info").start()
        report = str(info.value)
        errors = report.split("--- last lines of")[0]
        assert "--- errors in" in errors and f"{admin[1]}" in errors, report
    finally:
        taken.close()
