"""Running a page's ``bash`` blocks as a reader pastes them (used by test_quickstart.py).

Each page runs in one fresh ``bash`` (no rc files) with the environment of a new login
and nothing else: ``HOME`` (an empty directory), the system ``PATH``, ``LANG``. Its working
directory is a "clone": ``.venv`` (what ``./scripts/install`` made) and ``examples/`` linked
from this repository. It runs in a network namespace of its own (``unshare -rn``, loopback
up) so the page's fixed ports (7070, 18000, 8080, ...) are the ones used, whoever else
runs on this machine.

Every command line runs verbatim, in order, in that one shell (variables, ``export`` and
background jobs carry over as in a terminal); after each, the harness records its exit
status on file descriptor 9 and stops the page at the first failure. Nothing is retried,
waited for or set on the page's behalf: a step that needs a wait must show it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from gossamer.testing.leftovers import kill_envoys_under

REPO = Path(__file__).resolve().parents[3]
_FENCE = re.compile(r"^```(\w+)(?:[ \t]+(\S+))?[ \t]*\n(.*?)^```", re.S | re.M)
#: how long one page may run in all
PAGE_TIMEOUT = 300.0


@dataclass(frozen=True)
class Block:
    lang: str
    name: str | None
    text: str


def blocks(doc: str) -> list[Block]:
    return [Block(m[1], m[2], m[3]) for m in _FENCE.finditer(doc)]


def commands(text: str) -> list[str]:
    """A block's commands as the shell reads them: a line ending in ``\\`` continues;
    blank lines and whole-line comments are no commands."""
    out: list[str] = []
    pending = ""
    for line in text.splitlines():
        pending += line + "\n"
        if line.endswith("\\"):
            continue
        if pending.strip() and not pending.lstrip().startswith("#"):
            out.append(pending.rstrip("\n"))
        pending = ""
    return out


def script(cmds: list[str]) -> str:
    """The page's commands, each followed by the harness's status record (fd 9)."""
    out = ['exec 9>>"$PAGE_STATUS"; unset PAGE_STATUS']
    for i, cmd in enumerate(cmds):
        out += [
            cmd,
            f'__rc=$?; printf "%s %s %s\\n" {i} "$__rc" "$EPOCHREALTIME" >&9; '
            '[ "$__rc" -eq 0 ] || exit "$__rc"',
        ]
    out.append('printf "done 0 %s\\n" "$EPOCHREALTIME" >&9')
    return "\n".join(out) + "\n"


@dataclass
class Page:
    """One page running: its shell's process, its directory and what it recorded."""

    cwd: Path
    cmds: list[str]
    proc: asyncio.subprocess.Process
    status: Path
    output: Path

    def statuses(self) -> list[tuple[str, int]]:
        """(command index, exit status) of each command run so far."""
        return [(a, int(b)) for a, b, _ in self._records()]

    def finished_at(self, index: int) -> float:
        """When command ``index`` ended (unix time)."""
        return next(float(t) for a, _, t in self._records() if a == str(index))

    def _records(self) -> list[list[str]]:
        lines = self.status.read_text().splitlines() if self.status.exists() else []
        return [line.split() for line in lines if len(line.split()) == 3]

    def failure(self) -> str | None:
        for index, rc in self.statuses():
            if rc != 0:
                return (
                    f"{self.cmds[int(index)]!r} exited {rc}; the page's output:\n"
                    + self.output.read_text(errors="replace")[-4000:]
                )
        return None

    def reached(self, index: int) -> bool:
        return any(a == str(index) for a, _ in self.statuses())

    def index_of(self, start: str) -> int:
        return next(i for i, c in enumerate(self.cmds) if c.startswith(start))

    async def finish(self) -> None:
        """Wait for the page to end; fail naming the first command that failed."""
        try:
            async with asyncio.timeout(PAGE_TIMEOUT):
                await self.proc.wait()
        except TimeoutError:
            raise AssertionError(
                f"the page did not finish in {PAGE_TIMEOUT:g} s; its output:\n"
                + self.output.read_text(errors="replace")[-4000:]
            ) from None
        failed = self.failure()
        assert failed is None, failed
        assert self.statuses()[-1] == ("done", 0), self.output.read_text()[-4000:]

    def in_namespace(self, *argv: str) -> list[str]:
        """``argv`` run inside the page's network namespace (for a client on its loopback)."""
        return ["nsenter", "--preserve-credentials", "-U", "-n", "-t", str(self.proc.pid), *argv]


def clone(root: Path) -> Path:
    """A directory as a reader's clone after ``./scripts/install``.

    It lives at a short path of its own (linked from ``root``): the pages' state dirs hold
    the agents' SDS sockets, and a Unix socket's path has 107 bytes at most, which pytest's
    temporary directories under xdist (``/tmp/pytest-of-root/pytest-N/popen-gw0/test_...``)
    leave too little of; a reader's clone is at a path like ``~/gossamer``."""
    short = Path(tempfile.mkdtemp(prefix="gsm-"))
    atexit.register(shutil.rmtree, short, True)
    root.symlink_to(short / "clone")
    root = short / "clone"
    root.mkdir()
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / "examples").symlink_to(REPO / "examples")
    return root


@contextlib.asynccontextmanager
async def running(cwd: Path, cmds: list[str]) -> AsyncIterator[Page]:
    """Start the page's shell; on the way out, stop whatever it left running."""
    home = cwd.parent / f"{cwd.name}-home"
    home.mkdir()
    status = cwd.parent / f"{cwd.name}-status"
    output = cwd.parent / f"{cwd.name}-output.log"
    page_script = cwd.parent / f"{cwd.name}-page.sh"
    page_script.write_text(script(cmds))
    env = {
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PAGE_STATUS": str(status),
    }
    with output.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            "unshare", "-rn", "bash", "--noprofile", "--norc", "-c",
            f'ip link set lo up && exec bash --noprofile --norc "{page_script}"',
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    page = Page(cwd, cmds, proc, status, output)
    try:
        yield page
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the page's shell and its jobs
        await proc.wait()
        kill_envoys_under(cwd)  # sidecars are detached from their agent by design
