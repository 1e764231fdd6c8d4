"""A mesh for the gateway-identity tests, all real: a control plane, one agent host
(127.0.0.3) running ``reviews-1`` (service reviews) and ``ratings-1`` (service ratings)
behind agent-run sidecars, with in-process apps that echo the headers they got, and
``gossamer gateway`` processes in front of both (paths ``/reviews`` and ``/ratings``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.integration.agent.agents import GOSSAMER, AgentHandle, agents, run_cli

from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

TD = "shop.local"
APP_HOST = "127.0.0.3"


def manifests(edge_port: int, plain_port: int, *, reviews_mode: str = "strict") -> str:
    return f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{trustDomain: {TD}}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: reviews}}
spec: {{ports: [{{name: http, port: 9080}}], mtls: {{mode: {reviews_mode}}}}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: ratings}}
spec: {{ports: [{{name: http, port: 9081}}], mtls: {{mode: permissive}}}}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: {edge_port}}}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: plain}}
spec: {{port: {plain_port}}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: shop}}
spec:
  gateways: [edge, plain]
  rules:
    - matches: [{{path: {{prefix: /reviews}}}}]
      destinations: [{{service: reviews}}]
    - matches: [{{path: {{prefix: /ratings}}}}]
      destinations: [{{service: ratings}}]
"""


@dataclass
class GatewayProcess:
    name: str
    proc: asyncio.subprocess.Process
    url: str
    state_dir: Path
    err: Path

    def stderr(self) -> str:
        return self.err.read_text()

    def status(self) -> dict[str, Any]:
        path = self.state_dir / "status.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def kept(self, name: str) -> dict[str, Any]:
        """A JSON file the gateway keeps in its state dir."""
        return dict(json.loads((self.state_dir / name).read_text()))


@dataclass
class IdentityMesh:
    app: ControlPlaneApp
    host: AgentHandle
    reviews_app: HttpBackend
    ratings_app: HttpBackend
    edge_port: int
    plain_port: int
    tmp_path: Path

    @property
    def reviews_inbound(self) -> str:
        return str(self.host.status()["workloads"]["default/reviews-1"]["inbound"])

    def xfcc_uris(self, path: str) -> list[str]:
        """The URIs in the XFCC of the last request for ``path`` reviews' app got."""
        last = [r for r in self.reviews_app.seen if r.path == path][-1:]
        value = last[0].headers.get("x-forwarded-client-cert", "") if last else ""
        return [
            part.split("=", 1)[1]
            for element in value.split(",")
            for part in element.split(";")
            if part.startswith("URI=")
        ]

    async def gateway_token(self, ref: str) -> str:
        return await gateway_token(self.app, ref)

    def gateway(
        self, name: str, port: int, *args: str
    ) -> contextlib.AbstractAsyncContextManager[GatewayProcess]:
        """``gossamer gateway --name NAME ARGS`` as a process, killed at the end."""
        return gateway_process(self.app, self.tmp_path, name, port, *args)


async def gateway_token(app: ControlPlaneApp, ref: str) -> str:
    """A join token for Gateway ``ref`` (``gossamer token create --gateway``)."""
    code, out = await run_cli(
        "token", "create", "--gateway", ref, "--server", app.api_url, "--ttl", "10m"
    )
    assert code == 0, out
    return out.splitlines()[0].strip()


@contextlib.asynccontextmanager
async def gateway_process(
    app: ControlPlaneApp, tmp_path: Path, name: str, port: int, *args: str
) -> AsyncIterator[GatewayProcess]:
    """``gossamer gateway --name NAME ARGS`` against ``app`` as a process (its files under
    ``tmp_path/gw-NAME``), killed at the end."""
    workdir = tmp_path / f"gw-{name}"
    workdir.mkdir(exist_ok=True)
    err = workdir / "gateway.err"
    xds = f"{app.xds_addr[0]}:{app.xds_addr[1]}"
    xds_tls = f"{app.xds_tls_addr[0]}:{app.xds_tls_addr[1]}"
    with (workdir / "gateway.out").open("wb") as o, err.open("wb") as e:
        proc = await asyncio.create_subprocess_exec(
            GOSSAMER, "gateway", "--name", name, "--server", app.api_url,
            "--xds-addr", xds, "--xds-tls-addr", xds_tls, "--drain-seconds", "1",
            "--concurrency", "1", *args,
            stdin=subprocess.DEVNULL, stdout=o, stderr=e, start_new_session=True,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"},
        )  # fmt: skip
    gw = GatewayProcess(name, proc, f"http://127.0.0.1:{port}", workdir / "state", err)
    try:
        yield gw
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()


async def answers(url: str) -> int | None:
    """The status of one GET of ``url`` (None: no HTTP answer)."""
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        try:
            return (await client.get(url)).status_code
        except httpx.TransportError:
            return None


async def until_status(url: str, status: int, what: str, timeout: float = 60) -> None:  # noqa: ASYNC109
    async def reached() -> bool:
        return await answers(url) == status

    await wait_until(reached, timeout=timeout, what=what)


@contextlib.asynccontextmanager
async def identity_mesh(
    tmp_path: Path, *, reviews_mode: str = "strict"
) -> AsyncIterator[IdentityMesh]:
    edge_port, plain_port = free_port(), free_port()
    async with (
        running_control_plane(tmp_path / "cp") as app,
        HttpBackend("reviews-1", host=APP_HOST) as reviews_app,
        HttpBackend("ratings-1", host=APP_HOST) as ratings_app,
    ):
        await apply_yaml(
            app, manifests(edge_port, plain_port, reviews_mode=reviews_mode), wait=False
        )
        host = AgentHandle(
            app, "host-apps", APP_HOST, tmp_path / "apps",
            [
                {"name": "reviews-1", "service": "reviews",
                 "appAddress": reviews_app.address[0], "appPort": reviews_app.address[1]},
                {"name": "ratings-1", "service": "ratings",
                 "appAddress": ratings_app.address[0], "appPort": ratings_app.address[1]},
            ],
        )  # fmt: skip
        async with agents(host):
            await host.join()
            await host.start()
            await host.wait_running()
            yield IdentityMesh(app, host, reviews_app, ratings_app, edge_port, plain_port, tmp_path)
