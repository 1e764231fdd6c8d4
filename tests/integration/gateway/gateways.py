"""A control plane, backends and a gateway runner, all real, for the gateway tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gossamer.gateway import GatewayRunner, GatewaySettings
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp


@dataclass
class RunningGateway:
    runner: GatewayRunner
    url: str
    access: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_gateway(
    app: ControlPlaneApp, workdir: Path, port: int, *, name: str = "edge", drain: float = 1.0
) -> AsyncIterator[RunningGateway]:
    """``gossamer gateway`` in-process: a runner for Gateway ``name`` fed by ``app``."""
    settings = GatewaySettings(
        name=name, xds_addrs=(app.xds_addr,), workdir=workdir, drain_seconds=drain, concurrency=1
    )
    gw = RunningGateway(GatewayRunner(settings), f"http://127.0.0.1:{port}")
    gw.runner = GatewayRunner(settings, on_access=gw.access.append, on_message=gw.messages.append)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(gw.runner.run(stop))
        try:
            yield gw
        finally:
            stop.set()


async def wait_served(client: httpx.AsyncClient, url: str, host: str | None = None) -> None:
    """Until a request to ``url`` gets any answer from a backend (not Envoy's 404/503)."""
    headers = {"host": host} if host else {}

    async def answered() -> bool:
        try:
            r = await client.get(url, headers=headers)
        except httpx.TransportError:
            return False
        return "x-backend" in r.headers

    await wait_until(answered, timeout=30, what=f"{url} (host {host}) served by a backend")


def plain_backend(name: str, at: tuple[str, int]) -> str:
    """A Service ``name`` and its one Workload at ``at`` (no sidecar: the gateway reaches
    the process directly), as YAML."""
    return f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: {name}}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: {name}-1}}
spec: {{service: {name}, address: {at[0]}, sidecar: false, ports: [{{port: {at[1]}}}]}}
"""
