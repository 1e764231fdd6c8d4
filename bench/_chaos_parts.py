"""The pieces ``bench/chaos.py`` is built of: the gateway's manifests, one control-plane
replica as a process, the telemetry service they share, the load loop, a scenario's row."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gossamer.envoy.process import ManagedProcess
from gossamer.server.children import gossamer_program
from gossamer.server.telemetry_child import TOKEN_FILE
from gossamer.testing.mesh import service
from gossamer.types import API_VERSION

CLI = gossamer_program()  # (the installed ``gossamer``, as an operator runs it)
#: requests the load loop sends at most, whatever happens
MAX_REQUESTS = 200_000


def manifest(kind: str, name: str, spec: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def edge(gw_port: int, mark: str) -> list[dict[str, object]]:
    """The gateway ``edge`` sending to ``shop``, its answers marked ``x-chaos: <mark>``.
    Every request meets a global rate limit (the shared rate-limit service is asked each
    time; the figure is far above the load); ``/limited`` meets one of 2 a minute per
    ``x-chaos-key``, which the bench probes to see limits enforced."""
    # the load is GETs only (idempotent), so a request Envoy sent on a keep-alive
    # connection the stopping backend closed under it (503 UC) is safe to try again; the
    # Mesh's default retries leave ``reset`` out, for POSTs
    retries = {
        "attempts": 2,
        "retryOn": ["connect-failure", "refused-stream", "reset", "retriable-status-codes"],
        "statusCodes": [503],
    }
    marked = {"response": {"set": {"x-chaos": mark}}}
    limited = {
        "name": "limited",
        "matches": [{"path": {"prefix": "/limited"}}],
        "destinations": [{"service": "shop"}],
        "rateLimit": {"requests": 2, "per": "1m", "global": True, "key": {"header": "x-chaos-key"}},
    }
    everything = {
        "name": "shop",
        "destinations": [{"service": "shop"}],
        "headers": marked,
        "retries": retries,
        "rateLimit": {"requests": 1_000_000, "per": "1s", "global": True},
    }
    return [
        service("shop"),
        manifest("Gateway", "edge", {"port": gw_port}),
        manifest("Route", "edge", {"gateways": ["edge"], "rules": [limited, everything]}),
    ]


@dataclass
class Replica:
    data: Path
    api: int
    xds: int
    #: the mTLS xDS port (fixed, so hosts that joined find it after a restart)
    xds_tls: int
    grace: float
    #: ``--telemetry``, ``--telemetry-http`` and ``--ratelimit`` (the shared services')
    services: list[str] = field(default_factory=lambda: ["--telemetry", "off"])
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api}"

    async def start(self, store: str) -> None:
        argv = [*CLI, "control-plane", "--data-dir", str(self.data), "--store", store]
        argv += ["--api-tls", "off", "--api-addr", f"127.0.0.1:{self.api}"]
        argv += ["--xds-addr", f"127.0.0.1:{self.xds}", "--xds-tls", "optional"]
        argv += ["--xds-tls-addr", f"127.0.0.1:{self.xds_tls}", *self.services]
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
class TelemetryService:
    """One ``gossamer telemetry serve`` the replicas share (``--telemetry HOST:PORT``), as
    on a host of its own; its token is in each replica's ``telemetry.token``
    (docs/telemetry.md)."""

    workdir: Path
    grpc: int
    http: int
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    process: ManagedProcess | None = None

    def replica_args(self) -> list[str]:
        return [
            *("--telemetry", f"127.0.0.1:{self.grpc}"),
            *("--telemetry-http", f"127.0.0.1:{self.http}"),
        ]

    def give_token(self, data: Path) -> None:
        """Put the token where a replica with ``data`` as its data dir reads it."""
        data.mkdir(mode=0o700, exist_ok=True)
        (data / TOKEN_FILE).write_text(self.token)
        (data / TOKEN_FILE).chmod(0o600)

    async def start(self) -> None:
        self.give_token(self.workdir)
        argv = [*CLI, "telemetry", "serve", "--listen", f"127.0.0.1:{self.grpc}"]
        argv += ["--http", f"127.0.0.1:{self.http}", "--data", str(self.workdir / "t.sqlite")]
        argv += ["--token-file", str(self.workdir / TOKEN_FILE)]
        log = self.workdir / "telemetry.log"
        self.process = ManagedProcess(argv, log_path=log, name="telemetry serve")
        await self.process.start()

    async def kill(self) -> None:
        if self.process is not None:
            await self.process.kill()
            self.process = None

    async def counted(self, client: httpx.AsyncClient) -> int | None:
        """Requests the gateway sent to ``shop`` in the last hour, as counted (client
        view); None while the service does not answer."""
        try:
            r = await client.get(
                f"http://127.0.0.1:{self.http}/v1/topology",
                params={"since": "1h", "view": "client"},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.TransportError:
            return None
        if r.status_code != 200:
            return None
        edges = r.json()["edges"]
        return sum(
            int(e["requests"])
            for e in edges
            if (e["source"], e["destination"]) == ("default/edge", "default/shop")
        )


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
