"""The e2e test's apps (``mesh_app.py``) as real processes on a host address."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gossamer.envoy.process import ManagedProcess
from gossamer.polling import wait_until
from gossamer.testing.ports import free_port

SCRIPT = Path(__file__).with_name("mesh_app.py")


@dataclass
class AppProcess:
    """``mesh_app.py NAME HOST PORT [UPSTREAM]``; the port is kept across restarts."""

    name: str
    host: str
    logs: Path
    upstream: str | None = None
    port: int = field(default=0)
    process: ManagedProcess | None = None
    runs: int = 0

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port(self.host)

    async def start(self) -> None:
        self.runs += 1
        argv = [sys.executable, str(SCRIPT), self.name, self.host, str(self.port)]
        self.process = ManagedProcess(
            argv + ([self.upstream] if self.upstream else []),
            log_path=self.logs / f"{self.name}-{self.runs}.log",
            name=f"app {self.name}",
        )
        await self.process.start()

        async def up() -> bool:
            assert self.process is not None
            assert self.process.running, self.process.log_tail()
            async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
                try:
                    r = await client.get(f"http://{self.host}:{self.port}/healthz")
                except httpx.TransportError:
                    return False
            return r.status_code == 200

        await wait_until(up, timeout=30, what=f"app {self.name} listening")

    async def kill(self) -> None:
        assert self.process is not None
        await self.process.kill()

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop(5)
