"""Small builders of valid manifests, so each test states only what it is about."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.errors import FieldError, ValidationError
from gossamer.model import ModelSnapshot, Resource, parse_manifest
from gossamer.types import API_VERSION, Manifest


def manifest(kind: str, name: str, spec: dict[str, Any] | None = None, **meta: Any) -> Manifest:
    out: Manifest = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, **meta}}
    if spec is not None:
        out["spec"] = spec
    return out


def service(name: str, *ports: tuple[str, int, str], **spec: Any) -> Manifest:
    """A Service; ``ports`` are (name, port, protocol), default one http port 80."""
    ns = spec.pop("namespace", "default")
    port_list = [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports] or [
        {"name": "http", "port": 80}
    ]
    return manifest("Service", name, {"ports": port_list, **spec}, namespace=ns)


def workload(name: str, svc: str, address: str = "127.0.0.2", **spec: Any) -> Manifest:
    """A sidecar Workload serving ``svc``'s only port: inbound 15006, app on 8080."""
    ns = spec.pop("namespace", "default")
    labels = spec.pop("labels", {})
    body: dict[str, Any] = {
        "service": svc,
        "address": address,
        "ports": [{"port": 15006, "appPort": 8080}],
        **spec,
    }
    return manifest("Workload", name, body, namespace=ns, labels=labels)


def gateway(name: str, port: int = 8000, **spec: Any) -> Manifest:
    ns = spec.pop("namespace", "default")
    return manifest("Gateway", name, {"port": port, **spec}, namespace=ns)


def route(name: str, **spec: Any) -> Manifest:
    """A Route; default: east-west to service ``a`` sending everything to ``a``."""
    ns = spec.pop("namespace", "default")
    body: dict[str, Any] = {"rules": [{"destinations": [{"service": "a"}]}]}
    if "gateways" not in spec:
        body["service"] = "a"
    body.update(spec)
    return manifest("Route", name, body, namespace=ns)


def parse(*manifests: Manifest) -> list[Resource]:
    return [parse_manifest(m) for m in manifests]


def snapshot(*manifests: Manifest) -> ModelSnapshot:
    """A snapshot whose resources were created one by one, in argument order."""
    snap = ModelSnapshot()
    for r in parse(*manifests):
        snap = snap.with_changes(puts=[r])
    return snap


def errors_of(manifest: Any, source: str = "") -> list[str]:
    """The rendered errors parse_manifest raises for ``manifest`` (fails if it parses)."""
    with pytest.raises(ValidationError) as info:
        parse_manifest(manifest, source)
    return [str(e) for e in info.value.errors]


def messages(errors: list[FieldError]) -> list[str]:
    return [str(e) for e in errors]
