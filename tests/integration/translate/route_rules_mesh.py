"""A real control plane, a caller sidecar (web-1), reviews behind its own sidecar and a
sidecar-less shadow service, for Route rule tests: what the client and backends see."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_manifests, mesh_envoy, running_control_plane
from gossamer.testing.mesh import route, service, workload
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity

CLIENT = "127.0.0.2"
REVIEWS = "127.0.0.3"
SHADOW = "127.0.0.4"
#: the caller's HCM stats: ``http.<listener name>.`` (its outbound listener to reviews)
CALLER_STATS = "http.outbound|{address}:{port}."


@dataclass
class RulesMesh:
    app: ControlPlaneApp
    #: the caller's stable local address for reviews, as an app reaches it
    url: str
    reviews: HttpBackend
    shadow: HttpBackend
    caller: EnvoyProcess
    stat_prefix: str

    async def apply_rules(self, rules: list[dict[str, Any]]) -> None:
        """Replace reviews' Route; returns once the proxies ACKed it."""
        await apply_manifests(self.app, [route("reviews", "reviews", rules)])


def manifests(local: int, reviews_app: int, shadow_app: int, rules: list[dict[str, Any]]) -> list:
    return [
        service("web"),
        service("reviews", 9080),
        service("shadow", 9081),
        workload(
            "web-1",
            "web",
            CLIENT,
            free_port(CLIENT),
            1,
            dependencies=[{"service": "reviews", "localAddress": CLIENT, "localPort": local}],
        ),
        workload("reviews-1", "reviews", REVIEWS, free_port(REVIEWS), reviews_app),
        # sidecar-less: the caller's Envoy sends it mirrored copies directly
        workload("shadow-1", "shadow", SHADOW, shadow_app, shadow_app, sidecar=False),
        route("reviews", "reviews", rules),
    ]


@contextlib.asynccontextmanager
async def rules_mesh(tmp_path: Path, rules: list[dict[str, Any]]) -> AsyncIterator[RulesMesh]:
    """The mesh with reviews' Route holding ``rules`` (then a catch-all to reviews), served."""
    local = free_port(CLIENT)
    async with (
        HttpBackend("reviews", host=REVIEWS) as reviews,
        HttpBackend("shadow", host=SHADOW) as shadow,
        running_control_plane(tmp_path) as app,
    ):
        await apply_manifests(
            app, manifests(local, reviews.address[1], shadow.address[1], rules), wait=False
        )
        caller = mesh_envoy(app, ProxyIdentity("sidecar", "default", "web-1"))
        callee = mesh_envoy(app, ProxyIdentity("sidecar", "default", "reviews-1"))
        async with caller, callee:
            url = f"http://{CLIENT}:{local}"
            async with httpx.AsyncClient(timeout=5) as probe:

                async def served() -> bool:
                    try:
                        r = await probe.get(url + "/ready-probe")
                    except httpx.TransportError:
                        return False
                    return r.headers.get("x-backend") == "reviews"

                await wait_until(served, timeout=30, what="the mesh to serve reviews")
            prefix = CALLER_STATS.format(address=CLIENT, port=local)
            yield RulesMesh(app, url, reviews, shadow, caller, prefix)
