"""A small mesh used by the translator tests."""

from __future__ import annotations

from gossamer.model import ModelSnapshot, parse_yaml

SHOP = """
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: web}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: http, port: 9080}]}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: ratings}
spec: {ports: [{name: grpc, port: 9090, protocol: grpc}]}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: db}
spec: {ports: [{name: tcp, port: 5432, protocol: tcp}]}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: web-1}
spec:
  service: web
  address: 127.0.0.2
  host: host-a
  ports: [{port: 15001, appPort: 18080}]
  dependencies: [{service: reviews}, {service: ratings}, {service: db}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: reviews-1, labels: {version: v1}}
spec:
  service: reviews
  address: 127.0.0.3
  ports: [{port: 15001, appPort: 19080}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: reviews-2, labels: {version: v2, zone: b}}
spec:
  service: reviews
  address: 127.0.0.4
  ports: [{port: 15001, appPort: 19080}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: ratings-1}
spec:
  service: ratings
  address: 127.0.0.5
  ports: [{port: 15001, appPort: 19090}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: db-1}
spec:
  service: db
  address: 127.0.0.6
  ports: [{port: 15001, appPort: 15432}]
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: reviews}
spec:
  service: reviews
  rules:
  - matches: [{headers: [{name: x-canary, exact: "1"}]}]
    destinations: [{service: reviews, subset: {version: v2}}]
  - matches: [{path: {prefix: /}}]
    destinations:
    - {service: reviews, subset: {version: v1}, weight: 80}
    - {service: reviews, subset: {version: v2}, weight: 20}
    timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: [5xx, reset]}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {name: edge}
spec: {address: 127.0.0.1, port: 18000, hosts: ["shop.example.com", "*"]}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: edge}
spec:
  gateways: [edge]
  rules:
  - matches: [{path: {prefix: /api/ratings}, method: POST}]
    destinations: [{service: ratings}]
  - destinations: [{service: web}]
"""


def shop() -> ModelSnapshot:
    snap = ModelSnapshot().with_changes(parse_yaml(SHOP, "shop.yaml"))
    from gossamer.model import check_references

    assert check_references(snap) == []
    return snap
