"""Processes the agent starts and that must survive the agent's own restart.

Unlike ``gossamer.testing.process.ManagedProcess`` (a child that dies with its parent), a
sidecar Envoy runs in its own session with no parent-death signal, so an agent that crashes
or is restarted finds it still serving and adopts it. The agent stops it explicitly when
it stops (SIGTERM). A process is named by (pid, start time) so a reused pid never matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from gossamer.errors import ProcessError


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, ``/proc/PID/stat`` field 22); None if
    it does not run (or is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_running(pid: int, started: int) -> bool:
    """Whether the process ``pid`` that started at ``started`` still runs."""
    return start_time(pid) == started


async def spawn(argv: Sequence[str], log_path: Path) -> asyncio.subprocess.Process:
    """Start ``argv`` in its own session, output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        try:
            return await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        except OSError as e:
            raise ProcessError(f"cannot start {argv[0]}: {e.strerror}; check that it is "
                               "installed and executable") from None


def send(pid: int, started: int, sig: signal.Signals) -> bool:
    """Signal the process group of ``pid`` if it is still the process that started at
    ``started``; whether it was signalled."""
    if not is_running(pid, started):
        return False
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return True


async def wait_gone(pid: int, started: int, timeout: float,  # noqa: ASYNC109
                    child: asyncio.subprocess.Process | None = None) -> bool:
    """Wait until the process is gone (reaping it if it is our ``child``); whether it is."""
    if child is not None:
        try:
            await asyncio.wait_for(child.wait(), timeout)
        except TimeoutError:
            return False
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while is_running(pid, started):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def terminate(pid: int, started: int, grace: float,
                    child: asyncio.subprocess.Process | None = None) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns once the process is gone."""
    if send(pid, started, signal.SIGTERM) and await wait_gone(pid, started, grace, child):
        return
    send(pid, started, signal.SIGKILL)
    await wait_gone(pid, started, 10.0, child)
