"""Manifests for test meshes, as plain dicts (the same shape users write in YAML)."""

from __future__ import annotations

from typing import Any

from gossamer.types import API_VERSION, Manifest


def _manifest(
    kind: str, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None
) -> Manifest:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


def service(name: str, port: int = 8080, protocol: str = "http") -> Manifest:
    return _manifest(
        "Service", name, {"ports": [{"name": protocol, "port": port, "protocol": protocol}]}
    )


def workload(
    name: str,
    service: str,
    address: str,
    port: int,
    app_port: int,
    *,
    app_address: str | None = None,
    labels: dict[str, str] | None = None,
    dependencies: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> Manifest:
    """A workload with a sidecar listening on ``address:port`` in front of its app."""
    body: dict[str, Any] = {
        "service": service,
        "address": address,
        "appAddress": app_address or address,
        "ports": [{"port": port, "appPort": app_port}],
        **spec,
    }
    if dependencies:
        body["dependencies"] = dependencies
    return _manifest("Workload", name, body, labels)


def route(name: str, service: str, rules: list[dict[str, Any]]) -> Manifest:
    return _manifest("Route", name, {"service": service, "rules": rules})


def split(service: str, weights: dict[str, int]) -> list[dict[str, Any]]:
    """One rule sending ``service`` traffic to version subsets by weight."""
    return [
        {
            "destinations": [
                {"service": service, "subset": {"version": v}, "weight": w}
                for v, w in weights.items()
            ]
        }
    ]
