"""Admission: what an apply changes, and which changes skip the whole-mesh reference check."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.controlplane.admission import authorize, diff_against, status_only
from gossamer.errors import ConflictError, ValidationError
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.testing.mesh import service, workload
from gossamer.types import OWNER_LABEL, ResourceKey
from gossamer.types import SYSTEM_NAMESPACE as SYSTEM


def w(**spec: Any) -> Any:
    return parse_manifest(workload("w-1", "web", "127.0.0.2", 15000, 18000, **spec))


def test_health_weight_and_zone_alone_are_status_changes() -> None:
    assert status_only(w(), w(health="unhealthy", weight=3, zone="b"))


@pytest.mark.parametrize(
    "change",
    [
        {"address": "127.0.0.9"},
        {"sidecar": True, "dependencies": [{"service": "db"}]},
        {"appAddress": "127.0.0.7"},
    ],
)
def test_anything_else_is_not(change: dict[str, Any]) -> None:
    base = parse_manifest(workload("w-1", "web", "127.0.0.2", 15000, 18000))
    changed = parse_manifest(
        workload("w-1", "web", "127.0.0.2", 15000, 18000)
        | {"spec": {**workload("w-1", "web", "127.0.0.2", 15000, 18000)["spec"], **change}}
    )
    assert not status_only(base, changed)


def test_new_resources_and_other_kinds_are_not_status_changes() -> None:
    assert not status_only(None, w())
    svc = parse_manifest(service("web"))
    assert not status_only(svc, svc)


def test_diff_against_the_model() -> None:
    model = ModelSnapshot().with_changes([parse_manifest(service("web")), w()])
    diff = diff_against(
        model, [parse_manifest(service("web")), w(weight=2), parse_manifest(service("db"))]
    )
    assert [str(k) for k in diff.unchanged] == ["Service default/web"]
    assert [str(k) for k in diff.updated] == ["Workload default/w-1"]
    assert [str(k) for k in diff.created] == ["Service default/db"]


def test_only_the_owner_changes_an_agents_workload() -> None:
    owned = parse_manifest(
        workload("w-1", "web", "127.0.0.2", 15000, 18000)
        | {"metadata": {"name": "w-1", "labels": {OWNER_LABEL: "a1"}}}
    )
    model = ModelSnapshot().with_changes([parse_manifest(service("web")), owned])
    authorize(model, [owned], (), "a1", internal=False)
    with pytest.raises(ConflictError, match="registered by agent a1"):
        authorize(model, [w()], (), None, internal=False)
    with pytest.raises(ConflictError, match="registered by agent a1"):
        authorize(model, (), [owned.key], "a2", internal=False)
    with pytest.raises(ValidationError, match="set by the control plane"):
        authorize(model, [owned], (), None, internal=False)  # a user may not forge the label


def test_no_user_applies_or_deletes_in_the_system_namespace() -> None:
    """Listings hide gossamer-system (the control plane's own records), so a Service a user
    put there would be used by the mesh and seen by nobody."""
    hidden = parse_manifest(service("web") | {"metadata": {"name": "web", "namespace": SYSTEM}})
    model = ModelSnapshot()
    with pytest.raises(ValidationError, match=r"metadata\.namespace"):
        authorize(model, [hidden], (), None, internal=False)
    with pytest.raises(ValidationError, match="takes nothing from users"):
        authorize(model, (), [ResourceKey("Service", SYSTEM, "web")], None, internal=False)
    authorize(model, [hidden], (), None, internal=True)  # the control plane's own writes
