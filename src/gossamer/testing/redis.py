"""A real ``redis-server`` (Debian's) on a free loopback port with its own data dir, for
tests of the rate-limit service: started, stopped and started again on the same port (to
see what happens while Redis is down), always stopped at the end."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gossamer.envoy.process import ManagedProcess
from gossamer.errors import ProcessError
from gossamer.polling import wait_until
from gossamer.testing.ports import free_port


class RedisServer:
    def __init__(self, workdir: Path, host: str = "127.0.0.1") -> None:
        if shutil.which("redis-server") is None:
            raise ProcessError(
                "redis-server is not installed: apt-get install -y redis-server "
                "(scripts/install does it)"
            )
        self.host = host
        self.port = free_port(host)
        self.workdir = workdir
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = ["redis-server", "--bind", self.host, "--port", str(self.port)]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.process = ManagedProcess(argv, log_path=self.workdir / "redis.log", name="redis")
        await self.process.start()
        await wait_until(self.answers, timeout=15, what=f"redis-server on {self.port}")

    async def answers(self) -> bool:
        client = aioredis.Redis.from_url(self.url, socket_timeout=0.5)
        try:
            return bool(await client.ping())
        except (RedisError, OSError):
            return False
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop(grace=5)
            self.process = None


@contextlib.asynccontextmanager
async def running_redis(workdir: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(workdir)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
