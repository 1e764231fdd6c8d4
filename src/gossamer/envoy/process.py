"""Start a child process that can never outlive us, with its output in a log file.

The child runs in its own session (so a terminal's Ctrl-C reaches only us, and we signal
its whole process group), and on Linux gets SIGKILL if the thread that started it dies
(``PR_SET_PDEATHSIG``, set by util-linux ``setpriv`` where it exists). ``stop()`` sends
SIGTERM, then SIGKILL after a grace period; a finalizer kills the group if the object is
dropped or the interpreter exits while the child still runs. Nothing here depends on
pytest: production supervisors use it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

from gossamer.errors import ProcessError


def _with_pdeathsig(argv: list[str]) -> list[str]:
    """``argv`` run under ``setpriv --pdeathsig KILL`` (util-linux) where it exists.

    Python code between fork and exec (``preexec_fn``) is unsafe in a process with threads
    (gRPC's): it crashed children here. ``setpriv`` sets the same flag after the fork, in C.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _kill_if_running(proc: asyncio.subprocess.Process) -> None:
    # Once the child is reaped its pid may be reused: signal it only while it runs.
    if proc.returncode is None:
        _kill_group(proc.pid)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an exited, unreaped child)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs: fall back to signal 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


class ManagedProcess:
    """One child process; ``name`` is used in error messages."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        name: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        if not argv:
            raise ProcessError(f"{name}: empty command line")
        self.argv = list(argv)
        self.log_path = log_path
        self.name = name
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._proc: asyncio.subprocess.Process | None = None
        self._finalizer: weakref.finalize[[asyncio.subprocess.Process], ManagedProcess] | None = (
            None
        )

    async def start(self) -> None:
        """Start the process (its stdout and stderr go to ``log_path``)."""
        if self._proc is not None:
            raise ProcessError(f"{self.name} was already started (pid {self._proc.pid})")
        program = shutil.which(self.argv[0])
        if program is None:
            raise ProcessError(
                f"cannot start {self.name}: {self.argv[0]!r} is not an "
                "executable file nor found on PATH; check that it is installed"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # a child's log may quote requests and credentials' names: private, whatever the umask
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "ab") as log:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *_with_pdeathsig([program, *self.argv[1:]]),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._env,
                    cwd=self._cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProcessError(
                    f"cannot start {self.name} ({self.argv[0]}): {exc}; check that the "
                    "program is installed and executable"
                ) from exc
        self._finalizer = weakref.finalize(self, _kill_if_running, self._proc)

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ProcessError(f"{self.name} has not been started")
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has exited (negative: killed by that signal)."""
        return None if self._proc is None else self._proc.returncode

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def wait(self, timeout: float | None = None) -> int | None:  # noqa: ASYNC109
        """Wait for the process to exit; its exit status, or None if ``timeout`` passed."""
        if self._proc is None:
            return None
        try:
            async with asyncio.timeout(timeout):
                code = await self._proc.wait()
        except TimeoutError:
            return None
        self._reaped()
        return code

    async def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; the exit status.

        Even if the caller is cancelled, the process group gets SIGKILL before this
        returns.
        """
        if self._proc is None:
            return None
        try:
            if self._proc.returncode is None:
                self._signal(signal.SIGTERM)
                code = await self.wait(grace)
                if code is not None:
                    return code
            return await self.kill()
        finally:
            _kill_if_running(self._proc)

    async def kill(self) -> int | None:
        """SIGKILL the process group and wait for the process; its exit status."""
        if self._proc is None:
            return None
        self._signal(signal.SIGKILL)
        code = await self._proc.wait()
        self._reaped()
        return code

    def log_tail(self, max_lines: int = 40) -> str:
        """The last lines the process wrote (empty if it wrote nothing)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 64 * 1024))
                data = log.read()
        except OSError:
            return ""
        lines = data.decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-max_lines:])

    def _signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        if self._proc.returncode is not None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # not our group any more: fall back to the process itself
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    def _reaped(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
