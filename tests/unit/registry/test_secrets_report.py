"""An agent's report of the secrets its Envoys hold names only its own Workloads."""

from __future__ import annotations

import pytest

from gossamer.errors import ValidationError
from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.registry.workloads import holding_secrets, owned_workloads
from gossamer.types import OWNER_LABEL

NEEDED = ("identity", "trust-bundle")


def _model() -> ModelSnapshot:
    text = f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: web-1, labels: {{{OWNER_LABEL}: agent-a}}}}
spec: {{service: web, address: 127.0.0.2, ports: [{{port: 15001, appPort: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: web-2, labels: {{{OWNER_LABEL}: agent-b}}}}
spec: {{service: web, address: 127.0.0.3, ports: [{{port: 15001, appPort: 8080}}]}}
"""
    return ModelSnapshot().with_changes(parse_yaml(text, "t.yaml"))


def test_only_sidecars_holding_both_secrets_count() -> None:
    owned = owned_workloads(_model(), "agent-a")
    both = {"identity": "1f", "trust-bundle": "ab"}
    assert holding_secrets(owned, {"web-1": both}, "agent-a", NEEDED) == {"sidecar~default~web-1"}
    assert holding_secrets(owned, {"default/web-1": {"identity": "1f"}}, "agent-a", NEEDED) == set()
    assert holding_secrets(owned, {}, "agent-a", NEEDED) == set()


def test_another_agents_workload_is_refused_naming_the_field() -> None:
    owned = owned_workloads(_model(), "agent-a")
    with pytest.raises(ValidationError, match=r"secrets\.web-2.*agent-a has no Workload"):
        holding_secrets(owned, {"web-2": {"identity": "1", "trust-bundle": "2"}}, "agent-a", NEEDED)
