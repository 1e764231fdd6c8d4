"""The runner gives up, with the reason, on an Envoy that never comes up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gossamer.envoy.process import pid_alive
from gossamer.errors import EnvoyError
from gossamer.gateway import GatewayRunner, GatewaySettings
from gossamer.gateway.runner import MAX_START_FAILURES
from gossamer.polling import Backoff, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_an_envoy_that_never_starts_is_retried_with_backoff_then_reported(
    tmp_path: Path,
) -> None:
    # a supported release by its --version, that exits at once when run
    broken = tmp_path / "broken-envoy"
    broken.write_text(
        '#!/bin/sh\n[ "$1" = --version ] || exit 1\n'
        "echo 'envoy  version: 0123abcd/1.40.0/Clean/RELEASE/BoringSSL'\n"
    )
    broken.chmod(0o755)
    messages: list[str] = []
    settings = GatewaySettings(
        name="edge",
        xds_addrs=(("127.0.0.1", 9),),
        workdir=tmp_path,
        envoy=str(broken),
        restart=Backoff(initial=0.01, maximum=0.05),
    )
    runner = GatewayRunner(settings, on_access=lambda _: None, on_message=messages.append)
    with pytest.raises(EnvoyError, match=f"failed to start {MAX_START_FAILURES} times"):
        await asyncio.wait_for(runner.run(asyncio.Event()), 60)
    assert sum("Envoy did not start" in m for m in messages) == MAX_START_FAILURES
    assert sum("restarting Envoy in" in m for m in messages) == MAX_START_FAILURES - 1
    stats = runner.statistics()
    assert (stats.state, stats.starts, stats.pid) == ("stopped", MAX_START_FAILURES, None)


async def test_stop_before_envoy_is_up_stops_cleanly(tmp_path: Path) -> None:
    # the xDS address answers nothing: Envoy runs and waits; stop must still be prompt
    messages: list[str] = []
    settings = GatewaySettings(
        name="edge", xds_addrs=(("127.0.0.1", 9),), workdir=tmp_path, drain_seconds=0
    )
    runner = GatewayRunner(settings, on_access=lambda _: None, on_message=messages.append)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(runner.run(stop))
        pid = await wait_until(lambda: runner.statistics().pid, timeout=30, what="Envoy running")
        assert runner.statistics().state == "running"
        stop.set()
    assert runner.statistics().state == "stopped"
    assert isinstance(pid, int) and not pid_alive(pid)
    assert any("stopped" in m for m in messages)
