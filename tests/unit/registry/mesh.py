"""Manifests and a real ControlPlane over a MemoryStore (no Envoy) for registry tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from gossamer.model.internal import HostScope
from gossamer.types import API_VERSION, Manifest

#: a join token's scope for tests about something else: any service, any namespace
ANY = HostScope(anyService=True, anyNamespace=True)


def manifest(kind: str, name: str, spec: dict[str, Any], namespace: str = "default") -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def service(name: str, *ports: tuple[str, int, str], namespace: str = "default") -> Manifest:
    spec = {"ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]}
    return manifest("Service", name, spec, namespace)


def name_port(name: str) -> int:
    """A port of its own for each Workload name (they all share one address)."""
    return 20000 + int(hashlib.sha256(name.encode()).hexdigest(), 16) % 20000


def workload(
    name: str,
    service_name: str = "cart",
    *,
    host: str | None = "vm-1",
    address: str = "127.0.0.2",
    port: int | None = None,
    dependencies: list[dict[str, Any]] | None = None,
    namespace: str = "default",
) -> Manifest:
    spec: dict[str, Any] = {
        "service": service_name,
        "address": address,
        "ports": [{"port": port or name_port(name), "appPort": 8080}],
    }
    if host is not None:
        spec["host"] = host
    if dependencies:
        spec["dependencies"] = dependencies
    return manifest("Workload", name, spec, namespace)


SHOP = [
    service("cart", ("http", 8080, "http")),
    service("catalog", ("http", 9090, "http")),
    service("reviews", ("http", 9000, "http"), ("grpc", 9001, "grpc")),
]


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
