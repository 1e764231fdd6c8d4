"""``gossamer agent env`` for a dependency on an ExternalService: its stable local address
and port, like a Service's (the app dials its sidecar there)."""

from __future__ import annotations

from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.registry.env import workload_env

MESH = """
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: web}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: payments-api}
spec: {hosts: [pay.example.com], port: 443, protocol: https}
---
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: ledger, namespace: finance}
spec: {addresses: [203.0.113.5], port: 5432, protocol: tcp}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: web-1}
spec:
  service: web
  address: 127.0.0.2
  ports: [{port: 15001, appPort: 18080}]
  dependencies:
    - {service: payments-api, localPort: 80}
    - {service: ledger, namespace: finance}
"""


def test_external_dependencies_get_stable_local_addresses() -> None:
    snap = ModelSnapshot().with_changes(parse_yaml(MESH, "mesh.yaml"))
    env = workload_env(snap, snap.workloads[("default", "web-1")])
    pay = snap.local_addresses[("default", "payments-api")]
    ledger = snap.local_addresses[("finance", "ledger")]
    assert [(d.service, d.protocol, d.address, d.port) for d in env.dependencies] == [
        ("payments-api", "https", pay, 80),
        ("ledger", "tcp", ledger, 5432),
    ]
    assert env.env["PAYMENTS_API_ADDR"] == f"{pay}:80"
    assert env.env["LEDGER_FINANCE_HOST"] == ledger
    assert env.env["LEDGER_FINANCE_PORT"] == "5432"
