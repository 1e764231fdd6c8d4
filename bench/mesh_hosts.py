"""Hosts run by real ``gossamer agent`` processes, for benchmarks: join, run, stop.

Each host is one agent (its own state directory and workloads file) whose Envoys get
their configuration from the control plane over ADS and their certificates from the
agent's SDS server, as on a user's machine. ``HostAgent.stop`` drains the agent with
SIGTERM and kills any Envoy it left behind, so a failed run leaves no process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gossamer.agent.process import is_running
from gossamer.agent.state import StateDir
from gossamer.envoy.admin import EnvoyAdmin
from gossamer.envoy.process import ManagedProcess
from gossamer.server.app import ControlPlaneApp

GOSSAMER = str(Path(sys.executable).parent / "gossamer")


async def cli(*args: str, timeout: float = 60.0) -> str:  # noqa: ASYNC109
    """``gossamer ARGS``'s output; RuntimeError (with the output) if it fails."""
    proc = await asyncio.create_subprocess_exec(
        GOSSAMER, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"gossamer {' '.join(args)} exited {proc.returncode}: {out.decode()}")
    return out.decode()


@dataclass
class HostAgent:
    """One host: ``gossamer agent join`` then ``agent run`` with ``workloads``."""

    app: ControlPlaneApp
    host: str
    address: str
    directory: Path
    workloads: list[dict[str, Any]]
    process: ManagedProcess | None = field(default=None, init=False)

    @property
    def state(self) -> StateDir:
        return StateDir(self.directory / "state")

    async def start(self) -> None:
        """Join with a fresh join token for exactly the services of ``workloads`` (the
        operator's token is in GOSSAMER_TOKEN), then run."""
        scope = [a for w in self.workloads for a in ("--service", str(w["service"]))]
        token = json.loads(
            await cli("token", "create", "--server", self.app.api_url, "-o", "json", *scope)
        )
        await cli(
            "agent", "join", "--server", self.app.api_url, "--token", str(token["token"]),
            "--state-dir", str(self.state.path), "--host", self.host,
            "--xds", f"{self.app.xds_addr[0]}:{self.app.xds_addr[1]}",
        )  # fmt: skip
        config = self.directory / "workloads.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "host": self.host,
                    "address": self.address,
                    "drainSeconds": 1,
                    "workloads": self.workloads,
                }
            )
        )
        self.process = ManagedProcess(
            [GOSSAMER, "agent", "run", "--state-dir", str(self.state.path), "-f", str(config)],
            log_path=self.directory / "agent.log",
            name=f"agent {self.host}",
        )
        await self.process.start()

    def status(self) -> dict[str, Any]:
        return self.state.status() or {}

    async def wait_running(self, timeout: float = 90.0) -> None:  # noqa: ASYNC109
        """Until the agent registered and runs an Envoy for every workload."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if not self.process.running:
                raise RuntimeError(f"agent {self.host} exited:\n{self.process.log_tail()}")
            s = self.status()
            envoys = [w.get("envoy", {}).get("state") for w in s.get("workloads", {}).values()]
            if (
                s.get("pid") == self.process.pid
                and s.get("registered")
                and len(envoys) == len(self.workloads)
                and all(e == "running" for e in envoys)
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"agent {self.host} not running after {timeout:g} s: {s}")
            await asyncio.sleep(0.1)

    def envoy_pid(self, key: str) -> int:
        """The PID of the Envoy the agent runs for workload ``key`` (``ns/name``)."""
        return self.state.envoys()[key].pid

    def admin(self, key: str) -> EnvoyAdmin:
        return EnvoyAdmin(self.status()["workloads"][key]["envoy"]["admin"])

    def inbound(self, key: str) -> str:
        """``HOST:PORT`` of the sidecar's inbound listener for workload ``key``."""
        return str(self.status()["workloads"][key]["inbound"])

    async def stop(self) -> None:
        """SIGTERM the agent (it drains its Envoys), then kill any Envoy left running."""
        if self.process is not None:
            await self.process.stop(30)
        for record in self.state.envoys().values():
            if is_running(record.pid, record.start_time):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(record.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def running_hosts(*hosts: HostAgent) -> AsyncIterator[tuple[HostAgent, ...]]:
    """Start every host's agent, wait until all run; stop them all on the way out."""
    try:
        for h in hosts:
            await h.start()
        for h in hosts:
            await h.wait_running()
        yield hosts
    finally:
        for h in hosts:
            await h.stop()
