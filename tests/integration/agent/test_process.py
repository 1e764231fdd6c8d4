"""Detached processes: they outlive their starter, are found by (pid, start time), and stop."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from gossamer.agent.process import is_running, spawn, start_time, terminate, wait_exit
from gossamer.errors import ProcessError

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


async def test_spawn_is_not_our_child_and_terminates(tmp_path: Path) -> None:
    pid = await spawn(["sleep", "60"], tmp_path / "log", tmp_path / "pid")
    started = start_time(pid)
    assert started is not None and is_running(pid, started)
    assert int((tmp_path / "pid").read_text()) == pid
    assert os.getsid(pid) == pid  # its own session
    assert _parent(pid) != os.getpid()  # reparented, not our child
    assert not is_running(pid, started + 1)  # another process with that pid would not match
    await terminate(pid, started, grace=10)
    assert not is_running(pid, started)


async def test_wait_exit_and_sigkill_after_grace(tmp_path: Path) -> None:
    # a process that ignores SIGTERM is killed after the grace period
    pid = await spawn(["sh", "-c", "trap '' TERM; sleep 60"], tmp_path / "log", tmp_path / "pid")
    started = start_time(pid)
    assert started is not None
    await asyncio.wait_for(terminate(pid, started, grace=0.5), 20)
    assert not is_running(pid, started)
    await asyncio.wait_for(wait_exit(pid), 5)  # gone: returns at once


async def test_wait_exit_returns_when_it_dies(tmp_path: Path) -> None:
    pid = await spawn(["sleep", "60"], tmp_path / "log", tmp_path / "pid")
    waiter = asyncio.create_task(wait_exit(pid))
    await asyncio.sleep(0)
    assert not waiter.done()
    os.killpg(pid, signal.SIGKILL)
    await asyncio.wait_for(waiter, 10)


async def test_missing_program_exits_and_is_logged(tmp_path: Path) -> None:
    pid = await spawn([str(tmp_path / "nope")], tmp_path / "log", tmp_path / "pid")
    await asyncio.wait_for(wait_exit(pid), 10)
    assert "nope" in (tmp_path / "log").read_text()
    with pytest.raises(ProcessError, match="did not start"):
        await spawn(["true"], tmp_path / "log", tmp_path / "missing-dir" / "x" / "pid", timeout=0.5)
