"""Real agents (``gossamer agent`` processes) against a real control plane, for tests."""

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
from typing import Any, Protocol

import httpx
import yaml

from gossamer.agent.process import is_running
from gossamer.agent.state import StateDir
from gossamer.envoy.process import ManagedProcess
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.controlplane import api_client

GOSSAMER = str(Path(sys.executable).parent / "gossamer")


async def run_cli(*args: str, timeout: float = 60.0) -> tuple[int, str]:  # noqa: ASYNC109
    """Run ``gossamer ARGS``; (exit status, stdout + stderr)."""
    proc = await asyncio.create_subprocess_exec(
        GOSSAMER,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def new_token(app: ControlPlaneApp) -> str:
    async with api_client(app, trust_env=False) as client:
        r = await client.post(
            "/v1/tokens",
            json={"ttlSeconds": 600, "scope": {"anyService": True, "anyNamespace": True}},
        )
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


class Reachable(Protocol):
    """Where a control plane answers (a ``ControlPlaneApp``, or one that will)."""

    @property
    def api_url(self) -> str: ...

    @property
    def xds_addr(self) -> tuple[str, int]: ...


@dataclass
class AgentHandle:
    """One host: its state dir, workloads file and (while it runs) the agent process."""

    app: ControlPlaneApp
    host: str
    address: str
    state_dir: Path
    workloads: list[dict[str, Any]]
    drain_seconds: int = 1
    process: ManagedProcess | None = None
    runs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: join with ``--xds`` (the sidecars take plaintext xDS there); False: as an operator
    #: would, with the xDS addresses the control plane advertises (mTLS when it serves it)
    plaintext_xds: bool = True
    #: join every one of these control-plane replicas (``--server A,B``, and ``--xds A,B``
    #: with ``plaintext_xds``), running or not yet; empty: ``app`` alone
    replicas: tuple[Reachable, ...] = ()

    @property
    def state(self) -> StateDir:
        return StateDir(self.state_dir)

    def write_config(self) -> Path:
        path = self.state_dir.parent / f"{self.host}.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "host": self.host,
                    "address": self.address,
                    "drainSeconds": self.drain_seconds,
                    "workloads": self.workloads,
                }
            )
        )
        return path

    async def join(self) -> None:
        token = await new_token(self.app)
        planes: tuple[Reachable, ...] = self.replicas or (self.app,)
        xds = ["--xds", ",".join(f"{p.xds_addr[0]}:{p.xds_addr[1]}" for p in planes)]
        code, out = await run_cli(
            "agent",
            "join",
            "--server",
            ",".join(p.api_url for p in planes),
            "--token",
            token,
            "--state-dir",
            str(self.state_dir),
            "--host",
            self.host,
            *(xds if self.plaintext_xds else []),
        )
        assert code == 0, out

    async def start(self) -> None:
        config = self.write_config()
        self.runs += 1
        self.process = ManagedProcess(
            [GOSSAMER, "agent", "run", "--state-dir", str(self.state_dir), "-f", str(config)],
            log_path=self.state_dir.parent / f"{self.host}-agent-{self.runs}.log",
            name=f"agent {self.host}",
        )
        await self.process.start()

    def status(self) -> dict[str, Any]:
        return self.state.status() or {}

    async def wait_running(self, timeout: float = 60.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Wait until this run of the agent registered and every Envoy runs."""
        assert self.process is not None
        pid = self.process.pid

        def ready() -> dict[str, Any] | None:
            assert self.process is not None and self.process.running, self.log()
            s = self.status()
            if s.get("pid") != pid or s.get("state") != "running" or not s.get("registered"):
                return None
            envoys = [w["envoy"]["state"] for w in s["workloads"].values()]
            return s if all(e in ("running", "adopted") for e in envoys) else None

        result = await wait_until(
            ready, timeout=timeout, interval=0.05, what=f"agent {self.host} running"
        )
        assert isinstance(result, dict)
        return result

    async def env(self) -> dict[str, str]:
        """What ``gossamer agent env`` prints for this host (``<SERVICE>_ADDR=...``)."""
        code, out = await run_cli("agent", "env", "--state-dir", str(self.state_dir))
        assert code == 0, out
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def envoy_pids(self) -> dict[str, int]:
        return {k: r.pid for k, r in self.state.envoys().items()}

    def log(self) -> str:
        return "" if self.process is None else self.process.log_tail(60)

    async def signal(self, sig: signal.Signals) -> int | None:
        """Send ``sig`` to the agent; its exit status once it exited."""
        assert self.process is not None
        os.kill(self.process.pid, sig)
        return await self.process.wait(120)

    async def cleanup(self) -> None:
        """Stop the agent and any Envoy it left (a failed test leaves no orphan)."""
        if self.process is not None:
            await self.process.stop(30)
        for record in self.state.envoys().values():
            if is_running(record.pid, record.start_time):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(record.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def agents(*handles: AgentHandle) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for h in handles:
            await h.cleanup()


#: a ``Load.pace`` for tests that keep traffic flowing for a minute or more: a request about
#: every 5 ms (~150 a second here), so a failure lasting longer is seen, at a fraction of
#: the CPU of back-to-back requests that the suite's other tests need
PACED = 0.005


@dataclass
class Load:
    """A bounded request loop: sequential GETs until stopped, ``max_requests`` or
    ``max_seconds``; counts answers by status and transport errors. ``pace``: seconds to
    wait before each request (0: back to back)."""

    url: str
    max_requests: int = 20_000
    max_seconds: float = 120.0
    pace: float = 0.0
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    backends: dict[str, int] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            for _ in range(self.max_requests):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                if self.pace:  # (before each request: failures are paced too)
                    await asyncio.sleep(self.pace)
                try:
                    r = await client.get(self.url)
                except httpx.HTTPError as e:
                    self.failed.append(repr(e))
                    continue
                if r.status_code == 200:
                    self.ok += 1
                    backend = json.loads(r.text)["backend"]
                    self.backends[backend] = self.backends.get(backend, 0) + 1
                else:
                    self.failed.append(f"{r.status_code} {r.text[:120]}")

    def stop(self) -> None:
        self._stop.set()
