"""Driver subprocesses of simulated proxies, spoken to in JSON lines, and the cores the
xDS benches pin them and the control plane to (``xds_scale.py``, ``xds_fanout.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: the control plane (or the server measured) runs on the first, the drivers on the second
PLANE_CORE, DRIVER_CORE = 0, 1


@contextlib.contextmanager
def on_cores(cores: set[int] | None) -> Iterator[None]:
    """Run the calling thread (and what it spawns meanwhile) on ``cores``."""
    if cores is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


class DriverProc:
    """One driver subprocess, spoken to in JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process, nodes: list[str], log: Path) -> None:
        self.proc = proc
        self.nodes = nodes
        self.log = log
        self._next = 0
        self._lock = asyncio.Lock()

    async def ask(self, cmd: dict[str, Any], within: float = 120.0) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            self._next += 1
            self.proc.stdin.write((json.dumps({**cmd, "id": self._next}) + "\n").encode())
            await self.proc.stdin.drain()
            async with asyncio.timeout(within):
                line = await self.proc.stdout.readline()
        if not line:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"a driver exited ({self.proc.returncode}); its log:\n{tail}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"driver: {reply['error']}")
        return reply

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.ask({"cmd": "quit"}, within=30)
        try:
            async with asyncio.timeout(30):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
