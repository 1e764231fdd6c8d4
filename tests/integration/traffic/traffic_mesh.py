"""A caller sidecar in front of sidecar-less ``reviews`` instances, for TrafficPolicy tests.

``web-1``'s real Envoy (fed by a real control plane) is the caller whose clusters the
policies shape; the instances are ``ScriptedBackend``s (``HttpBackend`` that fail on cue).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing import HttpBackend, apply_manifests, free_port, mesh_envoy
from gossamer.testing.backends.http_echo import Receive, Scope, Send
from gossamer.testing.controlplane import running_control_plane
from gossamer.testing.mesh import service, workload
from gossamer.types import API_VERSION, Manifest, ProxyIdentity

CLIENT = "127.0.0.2"
CLUSTER = "outbound|default/reviews|http"
WEB = ProxyIdentity("sidecar", "default", "web-1")


class ScriptedBackend(HttpBackend):
    """An ``HttpBackend`` that answers 503 to request number n (from 0, health checks not
    counted) when ``fails(n)``, after ``delay`` seconds; ``/healthz`` answers 200 while
    ``healthy``, else 503. With ``gate``, each request waits until the gate is set (a held
    backend: a test decides when requests end, not the clock); ``holding`` counts them."""

    def __init__(
        self,
        name: str,
        host: str,
        *,
        fails: Callable[[int], bool] = lambda n: False,
        delay: float = 0.0,
        gate: asyncio.Event | None = None,
    ) -> None:
        super().__init__(name, host)
        self.fails = fails
        self.delay = delay
        self.gate = gate
        self.holding = 0
        self.healthy = True
        self.served = 0
        self.failed = 0
        self.health_checks = 0

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super()._app(scope, receive, send)
            return
        if scope["path"] == "/healthz":
            self.health_checks += 1
            await _answer(receive, send, 200 if self.healthy else 503, self.name)
            return
        n = self.served
        self.served += 1
        if self.gate is not None:
            self.holding += 1
            try:
                await self.gate.wait()
            finally:
                self.holding -= 1
        if self.fails(n):
            self.failed += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            await _answer(receive, send, 503, self.name)
            return
        if self.delay:
            await asyncio.sleep(self.delay)
        await super()._app(scope, receive, send)


async def _answer(receive: Receive, send: Send, status: int, name: str) -> None:
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-length", b"0"), (b"x-backend", name.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def instance(b: HttpBackend) -> Manifest:
    """A sidecar-less reviews instance at ``b`` (the caller's Envoy does all the work)."""
    host, port = b.address
    return workload(f"reviews-{b.name}", "reviews", host, port, port, sidecar=False)


def traffic_policy(**spec: Any) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrafficPolicy",
        "metadata": {"name": "reviews"},
        "spec": {"service": "reviews", **spec},
    }


@dataclass
class Caller:
    app: ControlPlaneApp
    envoy: EnvoyProcess
    client: httpx.AsyncClient
    url: str

    async def get(self, path: str = "/", **headers: str) -> httpx.Response:
        return await self.client.get(self.url + path, headers=headers)

    async def stat(self, name: str) -> int:
        full = f"cluster.{CLUSTER}.{name}"
        return (await self.envoy.stats(f"^{full.replace('|', '[|]')}$")).get(full, 0)

    async def reached(self, n: int, path: str = "/", **headers: str) -> Counter[str]:
        """Which backends answer ``n`` requests (``status NNN`` for Envoy's own answers)."""
        seen: Counter[str] = Counter()
        for _ in range(n):
            r = await self.get(path, **headers)
            seen[r.headers.get("x-backend", f"status {r.status_code}")] += 1
        return seen


@asynccontextmanager
async def caller(
    tmp_path: Path, backends: Sequence[HttpBackend], policy: Manifest | None
) -> AsyncIterator[Caller]:
    """A control plane serving web-1 (a sidecar that depends on reviews) and the reviews
    instances at ``backends``, with ``policy``; yields once web-1 reaches reviews."""
    local = free_port(CLIENT)
    async with running_control_plane(tmp_path) as app:
        manifests = [service("web"), service("reviews", 9080)]
        manifests += [instance(b) for b in backends]
        manifests.append(
            workload(
                "web-1",
                "web",
                CLIENT,
                free_port(CLIENT),
                1,
                dependencies=[{"service": "reviews", "localAddress": CLIENT, "localPort": local}],
            )
        )
        if policy is not None:
            manifests.append(policy)
        await apply_manifests(app, manifests, wait=False)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with (
            mesh_envoy(app, WEB) as envoy,
            httpx.AsyncClient(timeout=20, trust_env=False, limits=limits) as client,
        ):
            out = Caller(app, envoy, client, f"http://{CLIENT}:{local}")

            async def served() -> bool:
                # /healthz: not counted as a request, answered even by failing backends
                try:
                    return (await out.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(served, timeout=30, what="web-1 reaching reviews")
            yield out
