"""An ExternalService change reshapes its callers' clusters and listeners: the control plane
must rebuild them in full, never treat it as an endpoint-only change."""

from __future__ import annotations

from gossamer.controlplane.incremental import endpoint_change
from gossamer.model import ModelSnapshot, parse_yaml

BASE = """
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: web}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: api}
spec: {hosts: [localhost], port: 8080, protocol: http}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: web-1}
spec:
  service: web
  address: 127.0.0.2
  ports: [{port: 15001, appPort: 18080}]
  dependencies: [{service: api}]
"""
MOVED = """
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: api}
spec: {addresses: [127.0.0.9], port: 9090, protocol: tcp}
"""


def test_an_external_service_change_is_structural() -> None:
    old = ModelSnapshot().with_changes(parse_yaml(BASE, "base.yaml"))
    new = old.with_changes(parse_yaml(MOVED, "moved.yaml"))
    assert endpoint_change(old, new) is None
