"""The one "keep an Envoy running" loop, on a real Envoy: restarts it when it dies, stops when
asked leaving it running for the caller, then drains and stops it with nothing left."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gossamer.envoy.process import pid_alive
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.supervisor import Drain, EnvoySupervisor, Event, Exited, Running, Starting
from gossamer.polling import Backoff, wait_until
from gossamer.testing import resources
from gossamer.translate.bootstrap import static_bootstrap

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def _supervisor(tmp_path: Path, events: list[Event[EnvoyProcess]]) -> EnvoySupervisor[EnvoyProcess]:
    bootstrap = static_bootstrap(clusters=[resources.static_cluster("web", [("127.0.0.2", 9)])])

    async def start() -> EnvoyProcess:
        envoy = EnvoyProcess(bootstrap, workdir=tmp_path / "envoy")
        await envoy.start()
        return envoy

    return EnvoySupervisor(
        start,
        name="test envoy",
        backoff=Backoff(initial=0.05, maximum=0.1),
        stable_after=60,
        on_event=events.append,
    )


async def test_restarts_a_dead_envoy_then_drains_and_stops_it(tmp_path: Path) -> None:
    events: list[Event[EnvoyProcess]] = []
    supervisor = _supervisor(tmp_path, events)
    stop = asyncio.Event()

    def running_pid() -> int | None:
        envoy = supervisor.current
        return envoy.pid if supervisor.state == "running" and envoy is not None else None

    async with asyncio.TaskGroup() as tg:
        tg.create_task(supervisor.run(stop))
        first = await wait_until(running_pid, timeout=30, what="Envoy running")
        assert supervisor.current is not None
        assert await supervisor.current.kill() == -9
        second = (
            await wait_until(
                lambda: running_pid() not in (None, first), timeout=30, what="Envoy restarted"
            )
            and running_pid()
        )
        stop.set()
    # run() returned and left the Envoy running for the caller to stop
    envoy = supervisor.current
    assert envoy is not None and envoy.pid == second and pid_alive(second)
    assert await envoy.admin.ready()
    assert [type(e) for e in events] == [Starting, Running, Exited, Starting, Running]
    exited = events[2]
    assert isinstance(exited, Exited) and exited.status == -9 and exited.retry_in <= 0.1
    assert supervisor.starts == 2

    loop = asyncio.get_running_loop()
    began = loop.time()
    await supervisor.shutdown(Drain(30, fail_health_checks=True))
    assert loop.time() - began < 15  # no client connection open: no need to wait 30 s
    assert supervisor.state == "stopped" and supervisor.current is None
    assert envoy.returncode == 0  # SIGTERM after the drain, a clean exit
    assert not pid_alive(second)


async def test_cancelled_run_then_shutdown_leaves_no_envoy(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path, [])
    task = asyncio.create_task(supervisor.run())
    pid = await wait_until(
        lambda: supervisor.current.pid if supervisor.current is not None else None,
        timeout=30,
        what="Envoy running",
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert isinstance(pid, int) and pid_alive(pid)
    await supervisor.shutdown()
    assert not pid_alive(pid)
