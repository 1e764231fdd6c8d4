"""A small valid mesh as manifests: Service cart, two Workloads, a Route; plus proxy statuses."""

from __future__ import annotations

import copy
from typing import Any

from gossamer.types import API_VERSION, Manifest
from gossamer.xds.status import Nack, ProxyStatus, TypeStatus


def manifest(kind: str, name: str, spec: dict[str, Any], namespace: str = "default") -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def cart_service(namespace: str = "default") -> Manifest:
    return manifest("Service", "cart", {"ports": [{"name": "http", "port": 8080}]}, namespace)


def web_service() -> Manifest:
    return manifest("Service", "web", {"ports": [{"name": "http", "port": 80}]})


def cart_workload(name: str = "cart-1", address: str = "127.0.0.2") -> Manifest:
    return manifest(
        "Workload",
        name,
        {"service": "cart", "address": address, "ports": [{"port": 15006, "appPort": 8080}]},
    )


def cart_route(weight: int = 100) -> Manifest:
    return manifest(
        "Route",
        "cart",
        {"service": "cart", "rules": [{"destinations": [{"service": "cart", "weight": weight}]}]},
    )


def shop() -> list[Manifest]:
    return [cart_service(), web_service(), cart_workload(), cart_route()]


def changed(m: Manifest, **spec: Any) -> Manifest:
    out = copy.deepcopy(m)
    out["spec"].update(spec)
    return out


def proxy(
    name: str = "cart-1",
    *,
    connected: bool = True,
    nack: str | None = None,
    sent: str = "a1b2c3d4e5f6",
    acked: str = "a1b2c3d4e5f6",
    last_seen: float = 1_700_000_000.0,
) -> ProxyStatus:
    types = [
        TypeStatus(
            t, sent, acked, 1, Nack(sent, nack, last_seen) if nack and t == "listeners" else None
        )
        for t in ("clusters", "endpoints", "listeners", "routes")
    ]
    return ProxyStatus(
        node_id=f"sidecar~default~{name}",
        kind="sidecar",
        namespace="default",
        name=name,
        host="host-a",
        connected=connected,
        protocol="delta",
        last_seen=last_seen,
        synced=sent == acked and nack is None,
        admin_address="127.0.0.2:19000",
        types=types,
    )
