"""One sidecar Envoy of the agent: start it, find it again after an agent restart, wait
for it to die, drain it, stop it. (The checks made before any Envoy starts, binary present
and supported version, are shared with the gateway: ``gossamer.envoy.binary``.)"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

import httpx
from envoy.config.bootstrap.v3 import bootstrap_pb2

from gossamer.agent import process
from gossamer.agent.state import EnvoyRecord
from gossamer.envoy.proxy import bootstrap_json
from gossamer.errors import EnvoyError


def bootstrap_digest(bootstrap: bootstrap_pb2.Bootstrap) -> str:
    """Equal for equal bootstraps, in any process (JSON map order is not stable)."""
    return hashlib.sha256(bootstrap.SerializeToString(deterministic=True)).hexdigest()[:16]


@dataclass
class Sidecar:
    """A running Envoy, started by this agent or adopted from a previous one (it is never
    the agent's child: see ``gossamer.agent.process``)."""

    name: str
    record: EnvoyRecord

    @property
    def admin_url(self) -> str:
        return f"http://{self.record.admin}"

    @property
    def running(self) -> bool:
        return process.is_running(self.record.pid, self.record.start_time)

    @classmethod
    async def start(
        cls,
        name: str,
        binary: str,
        bootstrap: bootstrap_pb2.Bootstrap,
        workdir: Path,
        *,
        drain_seconds: int,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> Sidecar:
        """Write the bootstrap, start Envoy, wait until its admin API answers."""
        text = bootstrap_json(bootstrap)
        config = workdir / "bootstrap.json"
        config.write_text(text)
        admin = bootstrap.admin.address.socket_address
        argv = [
            binary,
            "-c",
            str(config),
            "--use-dynamic-base-id",
            "--base-id-path",
            str(workdir / "base-id"),
            "--concurrency",
            "1",
            "--drain-time-s",
            str(max(drain_seconds, 1)),
            "--drain-strategy",
            "immediate",
            "--log-level",
            "info",
        ]
        pid = await process.spawn(argv, workdir / "envoy.log", workdir / "envoy.pid")
        started = process.start_time(pid)
        record = EnvoyRecord(
            pid, started or 0, f"{admin.address}:{admin.port_value}", bootstrap_digest(bootstrap)
        )
        sidecar = cls(name, record)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await sidecar.admin_answers():
            if not sidecar.running:
                raise EnvoyError(
                    f"Envoy of {name} exited "
                    f"while starting; last lines of {workdir / 'envoy.log'}:\n"
                    f"{_tail(workdir / 'envoy.log')}"
                )
            if loop.time() >= deadline:
                await sidecar.stop(1.0)
                raise EnvoyError(
                    f"Envoy of {name} did not open its admin API on "
                    f"{record.admin} within {timeout:g} s; see "
                    f"{workdir / 'envoy.log'}"
                )
            await asyncio.sleep(0.05)
        return sidecar

    @classmethod
    async def adopt(cls, name: str, record: EnvoyRecord) -> Sidecar | None:
        """The Envoy of ``record`` if it still runs and answers its admin API."""
        if not process.is_running(record.pid, record.start_time):
            return None
        sidecar = cls(name, record)
        return sidecar if await sidecar.admin_answers() else None

    async def admin_answers(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
                r = await client.get(f"{self.admin_url}/server_info")
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    async def admin_post(self, path: str) -> None:
        try:
            async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
                r = await client.post(f"{self.admin_url}{path}")
        except httpx.HTTPError as e:
            raise EnvoyError(f"Envoy of {self.name}: admin POST {path} failed: {e!r}") from None
        if r.is_error:
            raise EnvoyError(
                f"Envoy of {self.name}: admin POST {path} answered {r.status_code}: {r.text[:200]}"
            )

    async def wait_exit(self) -> None:
        """Return when Envoy exits."""
        if self.running:  # (a pid that is gone may since have been reused)
            await process.wait_exit(self.record.pid)

    async def drain(self) -> None:
        """Drain the inbound listeners gracefully (connections are asked to close)."""
        await self.admin_post("/drain_listeners?graceful&inboundonly")

    async def stop(self, grace: float = 10.0) -> None:
        await process.terminate(self.record.pid, self.record.start_time, grace)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
