"""The shop mesh with Routes using every rule part (east-west and at the gateway)."""

from __future__ import annotations

from shop import shop

from gossamer.model import ModelSnapshot, parse_yaml

RULES = """
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: shadow}
spec: {ports: [{name: http, port: 9081}]}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: shadow-1}
spec:
  service: shadow
  address: 127.0.0.10
  ports: [{port: 15001, appPort: 19081}]
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: reviews}
spec:
  service: reviews
  rules:
  - name: api
    matches: [{path: {prefix: /api/v1}, queryParams: [{name: debug, exact: "1"}]}]
    rewrite: {prefix: /internal, host: reviews.internal}
    headers:
      request: {set: {x-a: b}, add: {x-c: "50%"}, remove: [x-secret]}
      response: {set: {x-served-by: mesh}, remove: [server]}
    destinations: [{service: reviews, subset: {version: v2}}]
    mirror: {service: shadow, percent: 12.5}
    fault:
      delay: {duration: 300ms, percent: 10}
      abort: {status: 503, percent: 5}
    rateLimit: {requests: 100, per: 1m}
  - matches: [{path: {regex: "/items/[0-9]+"}, queryParams: [{name: v, regex: "^[0-9]+$"}]}]
    rewrite: {regex: {pattern: "^/items/([0-9]+)$", substitution: "/item?id=\\\\1"}}
    destinations: [{service: reviews}]
    rateLimit: {requests: 5, per: 1s}
  - matches: [{path: {exact: /hello}, queryParams: [{name: flag, present: true}]}]
    directResponse: {status: 200, body: "hi"}
    fault: {abort: {status: 418, percent: 100}}
  - matches: [{path: {prefix: /old}}]
    redirect: {prefix: /new, status: 308}
  - matches: [{path: {exact: /moved}}]
    redirect: {path: /there, scheme: https, host: example.com, port: 8443, status: 302}
"""

GATEWAY_RULES = """
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: edge-rules}
spec:
  gateways: [edge]
  rules:
  - name: limited
    matches: [{path: {prefix: /limited}}]
    destinations: [{service: web}]
    rateLimit: {requests: 3, per: 1m}
    headers: {response: {set: {x-served-by: mesh}}}
  - matches: [{path: {exact: /hello}}]
    directResponse: {status: 200, body: "hi"}
  - matches: [{path: {prefix: /old}}]
    redirect: {prefix: /new}
"""


def shop_with_rules() -> ModelSnapshot:
    snap = shop().with_changes(parse_yaml(RULES, "rules.yaml"))
    return snap.with_changes(parse_yaml(GATEWAY_RULES, "edge-rules.yaml"))
