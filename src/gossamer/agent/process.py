"""Processes the agent starts and that must survive the agent's own restart.

Unlike ``gossamer.envoy.process.ManagedProcess`` (a child that dies with its parent), a
sidecar Envoy runs in its own session, reparented to init, so an agent that crashes or is
restarted finds it still serving and adopts it. (Envoy asks the kernel for SIGTERM when its
parent thread dies; started as the agent's child it would die with the agent.) The agent
stops it explicitly when it stops (SIGTERM). A process is named by (pid, start time) so a
reused pid never matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from gossamer.errors import PollTimeoutError, ProcessError
from gossamer.polling import wait_until


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


async def spawn(argv: Sequence[str], log_path: Path, pid_path: Path, timeout: float = 10.0) -> int:  # noqa: ASYNC109
    """Start ``argv`` detached from this process: in a new session, reparented to init (so
    no parent-death signal reaches it when the agent exits: Envoy asks for SIGTERM on its
    parent's death), output appended to ``log_path``; its pid (also left in ``pid_path``)."""
    setsid = shutil.which("setsid")
    if setsid is None:
        raise ProcessError(
            "the setsid program (util-linux) was not found on PATH; install util-linux"
        )
    # setsid --fork: the program runs in a child of a process that exits at once
    script = 'echo $$ > "$0"; exec "$@"'

    def start() -> int:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        pid_path.unlink(missing_ok=True)
        with log_path.open("ab") as log:
            try:
                launcher = subprocess.Popen(
                    [setsid, "--fork", "/bin/sh", "-c", script, str(pid_path), *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            except OSError as e:
                raise ProcessError(f"cannot start {argv[0]}: {e.strerror}") from None
        return launcher.wait(timeout)

    code = await asyncio.to_thread(start)
    if code != 0:
        raise ProcessError(
            f"cannot start {argv[0]}: setsid exited with status {code}; see {log_path}"
        )
    try:
        pid = await wait_until(
            lambda: _read_pid(pid_path), timeout=timeout, interval=0.01, what=f"{pid_path}"
        )
    except PollTimeoutError:
        raise ProcessError(
            f"{argv[0]} did not start within {timeout:g} s; see {log_path}"
        ) from None
    assert isinstance(pid, int)
    return pid


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") and text.strip().isdigit() else None


async def wait_exit(pid: int) -> None:
    """Return once process ``pid`` has exited (it need not be our child): its pidfd becomes
    readable then."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


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


async def terminate(pid: int, started: int, grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns once the process is gone."""
    if send(pid, started, signal.SIGTERM):
        try:
            async with asyncio.timeout(grace):
                await wait_exit(pid)
        except TimeoutError:
            send(pid, started, signal.SIGKILL)
            async with asyncio.timeout(10.0):
                await wait_exit(pid)
