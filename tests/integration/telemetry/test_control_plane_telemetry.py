"""The documented one command, ``gossamer control-plane`` (telemetry ``auto``), collects every
proxy's requests: real agents and Envoys under STRICT mTLS, a ``gossamer gateway`` with its
own identity in front of service A, whose app calls B with the headers it got; B answers
200, 404 or 500 as asked (the failing backend). Through the control plane's API,
``/v1/topology`` has exactly the real edges (edge -> A, A -> B), each with exactly the
requests the client sent in both views, 4xx and 5xx apart, all over mTLS; headers a client
outside forged (XFCC naming another caller, X-Forwarded-For, another Host) change no edge.
The control plane's auth applies to the forwarded API. Requests are counted from Envoy's
stats (the default), not from access-log entries."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from tests.integration.agent.agents import GOSSAMER, AgentHandle, agents, run_cli
from tests.integration.agent.mtls_mesh import refuses

from gossamer.agent.trust import client_context
from gossamer.envoy.admin import EnvoyAdmin
from gossamer.envoy.process import ManagedProcess
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.backends import HttpBackend
from gossamer.testing.ports import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(600),
]

TD = "shop.local"
A_HOST, B_HOST = "127.0.0.3", "127.0.0.4"
RELAY = Path(__file__).with_name("relay_app.py")
#: what the client sends through the gateway: path -> count (B answers the status)
TRAFFIC = {"/ok": 20, "/status/404": 5, "/status/500": 7}
SPOOFED = 6  # more /ok, with headers naming someone else
SPOOF_HEADERS = {
    "x-forwarded-client-cert": f"By=spiffe://{TD}/ns/default/sa/b;URI=spiffe://{TD}/ns/evil/sa/mallory",
    "x-forwarded-for": "10.9.8.7",
    "x-envoy-downstream-service-cluster": "evil",
    "host": "mallory.example",
}
TOTAL = sum(TRAFFIC.values()) + SPOOFED
EDGES = {("default/edge", "default/a"), ("default/a", "default/b")}


def mesh(gateway_port: int) -> str:
    return f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{trustDomain: {TD}, mtls: {{mode: strict}}}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: a}}
spec: {{ports: [{{name: http, port: {free_port()}}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: b}}
spec: {{ports: [{{name: http, port: {free_port()}}}]}}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: {gateway_port}}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: edge}}
spec:
  gateways: [edge]
  rules: [{{destinations: [{{service: a}}]}}]
"""


@dataclass
class CommandPlane:
    """``gossamer control-plane`` as a process, shaped like ``ControlPlaneApp`` where the
    test helpers (``AgentHandle``, ``api_client``) read it."""

    api_url: str
    xds_addr: tuple[str, int]
    settings: Any
    process: ManagedProcess

    def trust_bundle_pem(self) -> bytes:
        return Path(self.settings.data_dir, "ca", "root-cert.pem").read_bytes()

    def token(self) -> str:
        return Path(self.settings.data_dir, "admin.token").read_text().strip()

    def client(self, **headers: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api_url,
            verify=client_context(self.trust_bundle_pem()),
            headers={"authorization": f"Bearer {self.token()}", **headers},
            trust_env=False,
            timeout=15,
        )


@contextlib.asynccontextmanager
async def control_plane_command(workdir: Path) -> AsyncIterator[CommandPlane]:
    """``gossamer control-plane`` with its defaults (xDS mTLS only, telemetry auto)."""
    data = workdir / "cp"
    api, xds = free_port(), free_port()
    process = ManagedProcess(
        [
            GOSSAMER, "control-plane", "--data-dir", str(data),
            "--api-addr", f"127.0.0.1:{api}", "--xds-addr", f"127.0.0.1:{xds}",
        ],
        log_path=workdir / "control-plane.log",
        name="control-plane",
    )  # fmt: skip
    await process.start()
    plane = CommandPlane(
        f"https://127.0.0.1:{api}", ("127.0.0.1", xds), SimpleNamespace(data_dir=data), process
    )
    try:

        async def serving() -> bool:
            assert process.running, process.log_tail(30)
            if not (data / "admin.token").exists():
                return False
            try:
                async with plane.client() as c:
                    return (await c.get("/v1/topology")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(serving, timeout=60, what="the control plane and its telemetry child")
        yield plane
    finally:
        await process.stop(30)


@contextlib.asynccontextmanager
async def gateway(plane: CommandPlane, workdir: Path, admin: str) -> AsyncIterator[None]:
    """``gossamer gateway`` with the identity of Gateway default/edge."""
    code, out = await run_cli(
        "token", "create", "--gateway", "default/edge", "--server", plane.api_url, "--ttl", "10m"
    )
    assert code == 0, out
    process = ManagedProcess(
        [
            GOSSAMER, "gateway", "--name", "edge", "--server", plane.api_url,
            "--token", out.splitlines()[0].strip(), "--state-dir", str(workdir / "state"),
            "--workdir", str(workdir), "--admin-addr", admin,
            "--drain-seconds", "1", "--concurrency", "1",
        ],
        log_path=workdir.parent / "gateway.log",
        name="gateway edge",
    )  # fmt: skip
    await process.start()
    try:
        yield
    finally:
        await process.stop(30)


async def serves_over_mtls(admin: str, cluster: str) -> bool:
    """Is the Envoy at ``admin`` warm, with ``cluster`` healthy and over TLS?"""
    try:
        async with EnvoyAdmin(admin) as envoy:
            stats = await envoy.stats()
    except Exception:  # not up yet
        return False
    prefix = f"cluster.{cluster}."
    return (
        stats.get("cluster_manager.warming_clusters") == 0
        and stats.get("listener_manager.total_listeners_warming") == 0
        and stats.get("listener_manager.total_listeners_active", 0) >= 1
        and stats.get(prefix + "membership_healthy", 0) >= 1
        and prefix + "ssl.handshake" in stats  # (a TLS transport socket is configured)
        and any(re.search(r"\.rds\..*update_success$", k) and v for k, v in stats.items())
    )


async def send_traffic(url: str) -> dict[int, int]:
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(timeout=15, trust_env=False) as client:
        for path, n in TRAFFIC.items():
            for _ in range(n):
                r = await client.get(url + path)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        for _ in range(SPOOFED):
            r = await client.get(url + "/ok", headers=SPOOF_HEADERS)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    return statuses


def figures(topology: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int, int, float]]:
    return {
        (e["source"], e["destination"]): (
            e["requests"],
            e["errors4xx"],
            e["errors5xx"],
            e["mtls"],
        )
        for e in topology["edges"]
    }


async def test_the_control_plane_command_maps_every_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway_port, gateway_admin = free_port(), f"127.0.0.1:{free_port()}"
    async with (
        control_plane_command(tmp_path) as plane,
        HttpBackend("b-1", host=B_HOST) as b_app,
        contextlib.AsyncExitStack() as stack,
    ):
        monkeypatch.setenv("GOSSAMER_TOKEN", plane.token())
        (tmp_path / "mesh.yaml").write_text(mesh(gateway_port))
        code, out = await run_cli(
            "apply", "-f", str(tmp_path / "mesh.yaml"), "--server", plane.api_url
        )
        assert code == 0, out
        app = cast(ControlPlaneApp, plane)
        relay_port = free_port(A_HOST)
        a = AgentHandle(
            app, "host-a", A_HOST, tmp_path / "a",
            [{"name": "a-1", "service": "a", "appAddress": A_HOST, "appPort": relay_port,
              "dependencies": [{"service": "b"}]}],
            plaintext_xds=False,
        )  # fmt: skip
        b = AgentHandle(
            app, "host-b", B_HOST, tmp_path / "b",
            [{"name": "b-1", "service": "b", "appAddress": B_HOST, "appPort": b_app.address[1]}],
            plaintext_xds=False,
        )  # fmt: skip
        await stack.enter_async_context(agents(a, b))
        for h in (a, b):
            await h.join()
            await h.start()
        for h in (a, b):
            await h.wait_running()
        env = await a.env()
        relay = ManagedProcess(
            [sys.executable, str(RELAY), "a-1", A_HOST, str(relay_port), env["B_ADDR"]],
            log_path=tmp_path / "relay.log",
            name="relay a-1",
        )
        await relay.start()
        stack.push_async_callback(relay.stop, 5)
        await stack.enter_async_context(gateway(plane, tmp_path / "gw", gateway_admin))

        # Ready without sending a request that would count: every Envoy warm, each hop's
        # cluster healthy over TLS, the sidecars' inbounds refusing plaintext (STRICT).
        a_admin = a.status()["workloads"]["default/a-1"]["envoy"]["admin"]
        await wait_until(
            lambda: serves_over_mtls(gateway_admin, "outbound|default/a|http"),
            timeout=90,
            what="the gateway calling a over mTLS",
        )
        await wait_until(
            lambda: serves_over_mtls(a_admin, "outbound|default/b|http"),
            timeout=60,
            what="a's sidecar calling b over mTLS",
        )
        for h, key in ((a, "default/a-1"), (b, "default/b-1")):
            inbound = h.status()["workloads"][key]["inbound"]
            await wait_until(
                lambda i=inbound: refuses(f"http://{i}/"),  # type: ignore[misc]
                timeout=60,
                what=f"{key} taking mTLS only",
            )

        statuses = await send_traffic(f"http://127.0.0.1:{gateway_port}")
        assert statuses == {200: TRAFFIC["/ok"] + SPOOFED, 404: 5, 500: 7}, statuses
        expected = dict.fromkeys(EDGES, (TOTAL, 5, 7, 1.0))

        async with plane.client() as api:

            async def counted(view: str) -> dict[str, Any] | None:
                r = await api.get("/v1/topology", params={"since": "5m", "view": view})
                assert r.status_code == 200, r.text
                body: dict[str, Any] = r.json()
                done = {k: v[0] for k, v in figures(body).items()} == dict.fromkeys(EDGES, TOTAL)
                return body if done else None

            # (Envoy sends every second: FLUSH_INTERVAL; the service answers from memory)
            for view in ("client", "server", "merged"):
                body = await wait_until(
                    lambda v=view: counted(v),  # type: ignore[misc]
                    timeout=30,
                    what=f"every request in the {view} view",
                )
                assert figures(body) == expected, (view, body)
            kinds = {n["id"]: n["kind"] for n in body["nodes"]}
            assert kinds == {
                "default/edge": "gateway",
                "default/a": "service",
                "default/b": "service",
            }

            series = await api.get(
                "/v1/series",
                params={"since": "5m", "source": "default/a", "destination": "default/b"},
            )
            assert series.status_code == 200, series.text
            assert sum(p["requests"] for p in series.json()["points"]) == TOTAL
            # counted from Envoy's stats (the Mesh's default ``telemetry.requests: stats``):
            # no access-log entry, each request once per view (client and server, two hops)
            ingestion = await api.get("/v1/ingestion", params={"since": "5m"})
            assert ingestion.status_code == 200, ingestion.text
            assert ingestion.json()["entries"] == 0, ingestion.json()
            assert ingestion.json()["requestStats"]["requests"] == 4 * TOTAL, ingestion.json()
            bad = await api.get("/v1/topology", params={"since": "5 parsecs"})
            assert bad.status_code == 422 and "since" in bad.text, bad.text

        async with plane.client(authorization="") as anonymous:
            assert (await anonymous.get("/v1/topology")).status_code == 401
