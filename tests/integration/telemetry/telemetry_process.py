"""A real ``gossamer telemetry serve`` process for tests, on ports the test chose (so a
restarted service takes the same address Envoy was configured with)."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

import httpx

from gossamer.envoy.process import ManagedProcess
from gossamer.polling import wait_until


class TelemetryProcess:
    def __init__(self, workdir: Path, grpc_at: tuple[str, int], http_at: tuple[str, int]) -> None:
        self.workdir = workdir
        self.grpc_at = grpc_at
        self.http_at = http_at
        self.token = secrets.token_hex(16)
        self.token_file = workdir / "telemetry-token"
        self.token_file.write_text(self.token + "\n")
        self.data = workdir / "telemetry.sqlite"
        self.process: ManagedProcess | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{self.http_at[0]}:{self.http_at[1]}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"authorization": f"Bearer {self.token}"}, timeout=5
        )

    async def start(self) -> None:
        self.starts += 1
        argv = [
            sys.executable, "-c", "from gossamer.cli.main import run; run()", "telemetry", "serve",
            "--listen", f"{self.grpc_at[0]}:{self.grpc_at[1]}",
            "--http", f"{self.http_at[0]}:{self.http_at[1]}",
            "--data", str(self.data), "--token-file", str(self.token_file),
            "--flush-interval", "1",
        ]  # fmt: skip
        self.process = ManagedProcess(
            argv, log_path=self.workdir / f"telemetry-{self.starts}.log", name="telemetry"
        )
        await self.process.start()
        async with self.client() as c:

            async def answers() -> bool:
                assert self.process is not None and self.process.running, self.log()
                try:
                    return (await c.get("/v1/ingestion")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(answers, timeout=30, what="the telemetry service's API")

    async def stop(self) -> int | None:
        assert self.process is not None
        return await self.process.stop(grace=15)

    def log(self) -> str:
        return self.process.log_tail() if self.process is not None else ""

    async def get(self, path: str, **params: Any) -> Any:
        async with self.client() as c:
            response = await c.get(path, params=params)
            assert response.status_code == 200, response.text
            return response.json()
