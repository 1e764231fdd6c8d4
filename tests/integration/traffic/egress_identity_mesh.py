"""An egress gateway with a mesh identity, all real: a control plane in a STRICT mesh, one
agent host (127.0.0.2) running ``web-1`` (service web) behind an agent-run sidecar that
depends on the ExternalServices given, and a ``gossamer gateway`` process for Gateway
``egress`` (127.0.0.5) joined with a token (its own SPIFFE id), through which every one of
them is routed (``via``). The caller's hop to the gateway is then mTLS both ways.

The test is web's app: it dials web's stable local address for a service. Stats come
from both Envoys' admin APIs; ``intruder`` makes a client certificate of the mesh's own CA
for any service, as a compromised or misrouted workload would hold."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.agent.agents import AgentHandle, agents
from tests.integration.agent.test_strict_refusals import MeshCaKey, client_context, uri
from tests.integration.gateway.identity_mesh import (
    GatewayProcess,
    gateway_process,
    gateway_token,
)

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.server.app import ControlPlaneApp
from gossamer.testing import HttpBackend, apply_manifests, free_port
from gossamer.testing.controlplane import running_control_plane
from gossamer.testing.mesh import service
from gossamer.types import API_VERSION, Manifest, spiffe_id

TD = "shop.local"
CALLER_HOST = "127.0.0.2"
GATEWAY_ADDRESS = "127.0.0.5"
WEB_ID = spiffe_id(TD, "default", "web")
GATEWAY_ID = spiffe_id(TD, "default", "egress")


def external(name: str, via_port: int, **spec: Any) -> Manifest:
    """ExternalService ``name`` routed through Gateway ``egress`` on ``via_port``."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ExternalService",
        "metadata": {"name": name},
        "spec": {**spec, "via": {"gateway": "egress", "port": via_port}},
    }


@dataclass
class EgressIdentityMesh:
    app: ControlPlaneApp
    web: AgentHandle
    gateway: GatewayProcess
    gateway_admin: str
    tmp_path: Path

    def local(self, name: str, port: int) -> tuple[str, int]:
        """web's local address for ExternalService ``name`` (its external ``port``)."""
        assert self.app.plane.model is not None
        return self.app.plane.model.local_addresses[("default", name)], port

    async def gateway_stats(self, regex: str) -> dict[str, int]:
        async with EnvoyAdmin(self.gateway_admin, name="egress gateway") as envoy:
            return await envoy.stats(regex)

    async def web_stats(self, regex: str) -> dict[str, int]:
        admin = self.web.status()["workloads"]["default/web-1"]["envoy"]["admin"]
        async with EnvoyAdmin(admin, name="web-1's sidecar") as envoy:
            return await envoy.stats(regex)

    async def listener_handshakes(self, port: int) -> int:
        """TLS handshakes the gateway completed on its listener on ``port``."""
        stats = await self.gateway_stats(r"^listener\..*\.ssl\.handshake$")
        return sum(v for k, v in stats.items() if k.endswith(f"_{port}.ssl.handshake"))

    def intruder(self, service_name: str) -> ssl.SSLContext:
        """A TLS client holding a valid certificate of the mesh's CA for ``service_name``."""
        pem = MeshCaKey.read(self.tmp_path / "cp").sign(
            [uri(spiffe_id(TD, "default", service_name))]
        )
        return client_context(self.tmp_path, f"intruder-{service_name}", pem)


@contextlib.asynccontextmanager
async def egress_identity_mesh(
    tmp_path: Path, externals: list[Manifest], mtls: str = "strict"
) -> AsyncIterator[EgressIdentityMesh]:
    """The mesh with ``externals`` (``external(...)``) applied, web-1 depending on each."""
    gateway: Manifest = {
        "apiVersion": API_VERSION,
        "kind": "Gateway",
        "metadata": {"name": "egress"},
        "spec": {"address": GATEWAY_ADDRESS, "port": free_port(GATEWAY_ADDRESS)},
    }
    mesh: Manifest = {
        "apiVersion": API_VERSION,
        "kind": "Mesh",
        "metadata": {"name": "default"},
        "spec": {"trustDomain": TD, "mtls": {"mode": mtls}},
    }
    deps = [{"service": e["metadata"]["name"]} for e in externals]
    async with (
        running_control_plane(tmp_path / "cp") as app,
        HttpBackend("web-1", host=CALLER_HOST) as web_app,
    ):
        await apply_manifests(app, [mesh, service("web"), gateway, *externals], wait=False)
        web = AgentHandle(
            app, "host-web", CALLER_HOST, tmp_path / "web",
            [{"name": "web-1", "service": "web", "appAddress": web_app.address[0],
              "appPort": web_app.address[1], "dependencies": deps}],
        )  # fmt: skip
        admin = f"127.0.0.1:{free_port()}"
        token = await gateway_token(app, "default/egress")
        state = tmp_path / "gw-egress" / "state"
        async with (
            agents(web),
            gateway_process(
                app, tmp_path, "egress", gateway["spec"]["port"],
                "--token", token, "--state-dir", str(state), "--admin-addr", admin,
            ) as gw,
        ):  # fmt: skip
            await web.join()
            await web.start()
            await web.wait_running()
            yield EgressIdentityMesh(app, web, gw, admin, tmp_path)
