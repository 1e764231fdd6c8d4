"""NGAC policies over the shop mesh for the RBAC compiler's tests (``translate.rbac``)."""

from __future__ import annotations

from shop import shop

from gossamer.authz.engine import EngineState, build_state
from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.model.access_policy import AccessPolicy

TD = "gossamer.local"
WEB = f"spiffe://{TD}/ns/default/sa/web"
CRON = f"spiffe://{TD}/ns/default/sa/cron"
OTHER = f"spiffe://{TD}/ns/default/sa/other"
REVIEWS = ("default", "reviews")

#: the issue's example on reviews: frontends GET everything but /admin; cron everything
#: under /api/orders; a user that is not a SPIFFE id holds rights too (never compiled)
POLICY = f"""
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {{name: shop}}
spec:
  policyClasses: [shop]
  userAttributes: {{frontends: [shop], batch: [shop]}}
  objectAttributes:
    apis: [shop]
    "svc:default/reviews": [apis]
    "svc:default/reviews:/admin": ["svc:default/reviews"]
    "svc:default/reviews:/api/orders": ["svc:default/reviews"]
    "svc:default/reviews:/api": ["svc:default/reviews"]
    "svc:default/ratings": [apis]
  users: {{"{WEB}": [frontends], "{CRON}": [batch], "ops-person": [frontends]}}
  associations:
  - {{userAttribute: frontends, target: apis, rights: [GET]}}
  - {{userAttribute: batch, target: "svc:default/reviews:/api/orders", rights: ["*r"]}}
  prohibitions:
  - name: no-admin
    subject: frontends
    rights: [GET, POST]
    include: ["svc:default/reviews:/admin"]
"""


def policies(text: str = POLICY) -> list[AccessPolicy]:
    return [r for r in parse_yaml(text, "policy.yaml") if isinstance(r, AccessPolicy)]


def engine_state(text: str = POLICY) -> EngineState:
    return build_state(policies(text), [])


def shop_with(mode: str = "enforce", service_mode: str | None = None) -> ModelSnapshot:
    """The shop mesh with ``Mesh.spec.authorization.mode`` (and reviews' own mode)."""
    own = f", authorization: {{mode: {service_mode}}}" if service_mode else ""
    return shop().with_changes(
        parse_yaml(
            f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{authorization: {{mode: {mode}}}}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: reviews}}
spec: {{ports: [{{name: http, port: 9080}}]{own}}}
""",
            "mesh.yaml",
        )
    )
