"""One real gateway (control plane + ``gossamer gateway`` runner + Envoy) in front of two
raw backends, optionally with one edge setting taken out of its connection manager, to show
which tests that setting makes pass.

Routes: ``admin.example`` reaches ``admin`` only with ``x-user: root``; every other host
(``*``) reaches ``public`` — think of ``public`` as an app that serves whichever tenant the
``Host`` names, so a request for ``admin.example`` that lands there has bypassed the check.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge_wire import RawBackend, raw_backend
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from tests.integration.gateway.gateways import (
    RunningGateway,
    plain_backend,
    running_gateway,
    wait_served,
)

from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.translate import gateway_listeners
from gossamer.translate.edge_guard import LUA_FILTER

ADMIN_HOST = "admin.example"
HCM = hcm_pb2.HttpConnectionManager


def _without_host_canonical_form(hcm: HCM) -> None:
    hcm.strip_trailing_host_dot = False
    hcm.strip_any_host_port = False


def _without_edge_guard(hcm: HCM) -> None:
    kept = [f for f in hcm.http_filters if f.name != LUA_FILTER]
    del hcm.http_filters[:]
    hcm.http_filters.extend(kept)


def _forwarding_client_certs(hcm: HCM) -> None:
    hcm.forward_client_cert_details = HCM.ALWAYS_FORWARD_ONLY


def _without_x_envoy_cleaning(hcm: HCM) -> None:
    hcm.ClearField("early_header_mutation_extensions")
    hcm.use_remote_address.value = False


#: gateway variants: the hardened one, and one edge setting changed in each other
VARIANTS: dict[str, Callable[[HCM], None] | None] = {
    "hardened": None,
    "without-host-canonical-form": _without_host_canonical_form,
    "without-edge-guard": _without_edge_guard,
    "forwarding-client-certs": _forwarding_client_certs,
    "without-x-envoy-cleaning": _without_x_envoy_cleaning,
}


def weakened(variant: str, reason: str) -> Any:
    """A parameter for the ``edge`` fixture that is expected to fail (strictly)."""
    return pytest.param(variant, marks=pytest.mark.xfail(strict=True, reason=reason))


def mesh(admin: tuple[str, int], public: tuple[str, int], gw_port: int) -> str:
    out = [plain_backend(name, at) for name, at in (("admin", admin), ("public", public))]
    return (
        "---".join(out)
        + f"""---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: {gw_port}}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: admin}}
spec:
  gateways: [edge]
  hosts: [{ADMIN_HOST}]
  rules:
  - matches: [{{path: {{prefix: /}}, headers: [{{name: x-user, exact: root}}]}}]
    destinations: [{{service: admin}}]
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: public}}
spec:
  gateways: [edge]
  rules:
  - destinations: [{{service: public}}]
"""
    )


@dataclass
class EdgeMesh:
    gw: RunningGateway
    address: tuple[str, int]
    admin: RawBackend
    public: RawBackend

    def clear(self) -> None:
        self.admin.heads.clear()
        self.public.heads.clear()

    @property
    def heads(self) -> list[bytes]:
        """Every request head either backend received since ``clear``."""
        return self.admin.heads + self.public.heads

    def heads_with(self, needle: bytes) -> list[bytes]:
        return self.admin.heads_with(needle) + self.public.heads_with(needle)


@contextlib.asynccontextmanager
async def edge_mesh(workdir: Path, variant: str) -> AsyncIterator[EdgeMesh]:
    change = VARIANTS[variant]
    original = gateway_listeners.http_connection_manager

    def build(*args: Any, **kwargs: Any) -> HCM:
        hcm = original(*args, **kwargs)
        if change is not None and kwargs.get("edge") is not None:
            change(hcm)
        return hcm

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gateway_listeners, "http_connection_manager", build)
        async with (
            raw_backend("admin", "127.0.0.3") as admin,
            raw_backend("public", "127.0.0.4") as public,
            running_control_plane(workdir / "cp") as app,
        ):
            gw_port = free_port()
            await apply_yaml(app, mesh(admin.address, public.address, gw_port), wait=False)
            async with (
                running_gateway(app, workdir / "gw", gw_port) as gw,
                httpx.AsyncClient(timeout=10, trust_env=False) as client,
            ):
                await wait_served(client, gw.url + "/", "anything.example")
                yield EdgeMesh(gw, ("127.0.0.1", gw_port), admin, public)
