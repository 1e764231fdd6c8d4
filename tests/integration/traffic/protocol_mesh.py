"""A small mesh for protocol tests: a caller sidecar (``web-1``) and a gateway (``edge``) in
front of a service whose instances each run behind their own sidecar.

The path a request takes east-west is client → web-1's outbound listener → (HTTP/2, the
mesh's hop between sidecars) → the instance's sidecar → its app; at ingress it is client →
edge → (HTTP/2) → the instance's sidecar → its app. Every Envoy is real and fed by a real
control plane.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.server.app import ControlPlaneApp
from gossamer.testing import apply_manifests, free_port, mesh_envoy
from gossamer.testing.controlplane import running_control_plane
from gossamer.testing.mesh import service, workload
from gossamer.types import API_VERSION, Manifest, ProxyIdentity

CLIENT = "127.0.0.2"
SERVICE = "echo"


@dataclass
class ProtocolMesh:
    app: ControlPlaneApp
    caller: EnvoyProcess
    gateway: EnvoyProcess
    callees: list[EnvoyProcess]
    #: (host, port) where web-1's sidecar takes calls to the service
    east_west: tuple[str, int]
    #: (host, port) of the gateway
    ingress: tuple[str, int]

    def url(self, where: str, scheme: str = "http") -> str:
        host, port = self.east_west if where == "east-west" else self.ingress
        return f"{scheme}://{host}:{port}"

    async def apply(self, manifests: list[Manifest]) -> None:
        await apply_manifests(self.app, manifests)


def route(rules: list[dict[str, Any]], *, gateway: bool = False) -> Manifest:
    """A Route of ``rules`` for calls to the service (east-west) or at the gateway."""
    spec: dict[str, Any] = {"gateways": ["edge"]} if gateway else {"service": SERVICE}
    name = "edge" if gateway else SERVICE
    return {
        "apiVersion": API_VERSION,
        "kind": "Route",
        "metadata": {"name": name},
        "spec": {**spec, "rules": rules},
    }


def mesh_resource(spec: dict[str, Any]) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "Mesh",
        "metadata": {"name": "default"},
        "spec": spec,
    }


@asynccontextmanager
async def protocol_mesh(
    tmp_path: Path,
    apps: Sequence[tuple[str, int]],
    *,
    protocol: str = "http",
    extra: Sequence[Manifest] = (),
) -> AsyncIterator[ProtocolMesh]:
    """The service ``echo`` (one port of ``protocol``) with one sidecar per app address in
    ``apps`` (the sidecar listens on the app's host), web-1 depending on it and a gateway
    whose catch-all rule sends everything to it; ``extra``: more manifests (Routes)."""
    local, gw_port = free_port(CLIENT), free_port("127.0.0.1")
    async with running_control_plane(tmp_path) as app:
        manifests = [service("web"), service(SERVICE, 9000, protocol)]
        for i, (host, port) in enumerate(apps):
            manifests.append(workload(f"{SERVICE}-{i}", SERVICE, host, free_port(host), port))
        manifests += [
            workload(
                "web-1",
                "web",
                CLIENT,
                free_port(CLIENT),
                1,
                dependencies=[{"service": SERVICE, "localAddress": CLIENT, "localPort": local}],
            ),
            {
                "apiVersion": API_VERSION,
                "kind": "Gateway",
                "metadata": {"name": "edge"},
                "spec": {"address": "127.0.0.1", "port": gw_port},
            },
        ]
        if not any(m["kind"] == "Route" and "gateways" in m["spec"] for m in extra):
            manifests.append(route([{"destinations": [{"service": SERVICE}]}], gateway=True))
        await apply_manifests(app, [*manifests, *extra], wait=False)
        async with AsyncExitStack() as stack:
            callees = [
                await stack.enter_async_context(
                    mesh_envoy(app, ProxyIdentity("sidecar", "default", f"{SERVICE}-{i}"))
                )
                for i in range(len(apps))
            ]
            caller = await stack.enter_async_context(
                mesh_envoy(app, ProxyIdentity("sidecar", "default", "web-1"))
            )
            gateway = await stack.enter_async_context(
                mesh_envoy(app, ProxyIdentity("gateway", "default", "edge"))
            )
            yield ProtocolMesh(
                app, caller, gateway, callees, (CLIENT, local), ("127.0.0.1", gw_port)
            )
