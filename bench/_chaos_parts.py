"""The pieces ``bench/chaos.py`` is built of: the gateway's manifests, one control-plane
replica as a process, the load loop, a scenario's row."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gossamer.envoy.process import ManagedProcess
from gossamer.testing.mesh import service
from gossamer.types import API_VERSION

CLI = [sys.executable, "-c", "from gossamer.cli.main import run; run()"]
#: requests the load loop sends at most, whatever happens
MAX_REQUESTS = 200_000


def manifest(kind: str, name: str, spec: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def edge(gw_port: int, backends: list[tuple[str, int]], mark: str) -> list[dict[str, object]]:
    """The gateway ``edge`` sending to ``shop`` (one plain workload per backend), its answers
    marked ``x-chaos: <mark>``."""
    shop = [
        manifest(
            "Workload",
            f"shop-{i}",
            {"service": "shop", "address": host, "sidecar": False, "ports": [{"port": port}]},
        )
        for i, (host, port) in enumerate(backends, 1)
    ]
    rule = {
        "destinations": [{"service": "shop"}],
        "headers": {"response": {"set": {"x-chaos": mark}}},
    }
    return [
        service("shop"),
        *shop,
        manifest("Gateway", "edge", {"port": gw_port}),
        manifest("Route", "edge", {"gateways": ["edge"], "rules": [rule]}),
    ]


@dataclass
class Replica:
    data: Path
    api: int
    xds: int
    grace: float
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api}"

    async def start(self, store: str) -> None:
        argv = [*CLI, "control-plane", "--data-dir", str(self.data), "--store", store]
        argv += ["--api-tls", "off", "--api-addr", f"127.0.0.1:{self.api}"]
        argv += ["--xds-addr", f"127.0.0.1:{self.xds}", "--xds-tls", "optional"]
        argv += ["--xds-tls-addr", "127.0.0.1:0", "--telemetry", "off"]
        argv += ["--store-loss-grace", f"{self.grace:g}"]
        log = self.data.parent / f"{self.data.name}.log"
        self.process = ManagedProcess(argv, log_path=log, name=f"control plane {self.data.name}")
        await self.process.start()

    async def ready(self, client: httpx.AsyncClient) -> bool:
        if self.process is None or not self.process.running:
            tail = self.process.log_tail() if self.process else "not started"
            raise RuntimeError(f"replica {self.data.name} is not running:\n{tail}")
        try:
            return (await client.get(f"{self.url}/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    async def stop(self, *, kill: bool = False) -> None:
        if self.process is not None:
            await (self.process.kill() if kill else self.process.stop())
            self.process = None


@dataclass
class Load:
    """The traffic through the gateway: a bounded loop, counting answers and failures."""

    url: str
    sent: int = 0
    failed: int = 0
    marks: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            for _ in range(MAX_REQUESTS):
                if stop.is_set():
                    return
                self.sent += 1
                try:
                    r = await client.get(self.url)
                    ok = r.status_code == 200
                    mark = r.headers.get("x-chaos", "")
                    detail = f"{r.status_code} {r.text[:80]!r}"
                except httpx.TransportError as e:
                    ok, mark, detail = False, "", repr(e)
                if ok:
                    self.marks[mark] = self.marks.get(mark, 0) + 1
                else:
                    self.failed += 1
                    if len(self.failures) < 20:
                        self.failures.append(f"{time.strftime('%H:%M:%S')} {detail}")
                await asyncio.sleep(0.002)  # ~ a few hundred requests a second at most


@dataclass
class Row:
    scenario: str
    sent: int
    failed: int
    recover_s: float
    detail: str
