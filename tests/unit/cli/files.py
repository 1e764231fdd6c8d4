"""YAML the CLI tests read: a small valid shop, and ways to break it."""

from __future__ import annotations

SERVICES = """\
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: cart}
spec:
  ports: [{name: http, port: 8080}]
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: web}
spec:
  ports: [{name: http, port: 80, protocol: http2}]
"""

WORKLOAD = """\
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: cart-1, labels: {version: v1}}
spec:
  service: cart
  address: 127.0.0.2
  ports: [{port: 15006, appPort: 8080}]
  host: host-a
"""

ROUTE = """\
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: cart}
spec:
  service: cart
  rules:
    - destinations:
        - {service: cart, weight: 100}
"""

SHOP = "---\n".join([SERVICES, WORKLOAD, ROUTE])

BAD_WEIGHT = ROUTE.replace("weight: 100", "weight: 101")

BAD_YAML = "apiVersion: gossamer.dev/v1\nkind: Service\n  metadata: [\n"
