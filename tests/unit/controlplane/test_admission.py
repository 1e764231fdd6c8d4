"""Admission: what an apply changes, which changes skip the whole-mesh reference check,
where that check runs, and when only what an apply changes is checked."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gossamer.controlplane import admission
from gossamer.controlplane.admission import authorize, diff_against, status_only
from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import ConflictError, ValidationError
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.store.memory import MemoryStore
from gossamer.testing.mesh import route, service, workload
from gossamer.types import OWNER_LABEL, ResourceKey
from gossamer.types import SYSTEM_NAMESPACE as SYSTEM
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor


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


@pytest.mark.asyncio
async def test_the_whole_mesh_check_runs_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """~210 ms at 10k services: on the loop it stalled every ADS stream for each apply."""
    plane = ControlPlane(MemoryStore(), SnapshotCache(), XdsMonitor(CollectorRegistry()))
    await plane.load()
    loop_thread = threading.get_ident()
    threads: list[int] = []
    real = admission.check_references

    def check(snap: ModelSnapshot) -> Any:
        threads.append(threading.get_ident())
        return real(snap)

    monkeypatch.setattr(admission, "check_references", check)
    await plane.apply([parse_manifest(service("web", 8080)), w()])
    assert threads and loop_thread not in threads
    with pytest.raises(ValidationError, match="db"):  # (and its errors still refuse)
        await plane.apply([w(sidecar=True, dependencies=[{"service": "db"}])])


@pytest.mark.asyncio
async def test_on_a_checked_model_a_route_apply_checks_what_it_changes(
    whole_checks: list[ModelSnapshot],
) -> None:
    """The whole check runs on a model read from the store; once a check passed (or
    status-only changes followed one), a Route's apply checks the Routes put and what
    reads Routes, and refuses what the whole check refuses. Another replica's write,
    absorbed from the store, makes the next apply check everything again."""
    plane = ControlPlane(MemoryStore(), SnapshotCache(), XdsMonitor(CollectorRegistry()))
    await plane.load()
    whole = whole_checks

    def to(svc: str) -> Any:
        rules = [{"destinations": [{"service": svc}]}]
        return parse_manifest(route("web", service="web", rules=rules))

    await plane.apply([parse_manifest(service("web", 8080)), w()])
    assert len(whole) == 1  # (read from the store: checked whole)
    await plane.apply([to("web")])
    await plane.apply([w(weight=3)])  # status only: still known consistent
    await plane.apply([to("web")])
    assert len(whole) == 1
    with pytest.raises(ValidationError, match="Service default/db does not exist"):
        await plane.apply([to("db")])
    await plane.apply([parse_manifest(service("db", 5432))])  # not a Route: whole
    assert len(whole) == 2
    # a write the plane did not check itself (another replica's), read from the store
    await plane.store.apply([parse_manifest(service("api", 9090)).to_manifest()])
    batch = await anext(aiter(plane.store.watch(plane.model.revision if plane.model else 0)))
    plane._follower.absorb(batch)
    await plane.apply([to("db")])
    assert len(whole) == 3


@pytest.mark.asyncio
async def test_the_model_read_at_start_is_checked_in_the_background(
    whole_checks: list[ModelSnapshot], caplog: pytest.LogCaptureFixture
) -> None:
    """Consistent, the next Route apply on it checks only what it changes; inconsistent,
    the operator is told what is wrong, and applies are checked whole."""
    whole = whole_checks
    rules = [{"destinations": [{"service": "web"}]}]
    put = [parse_manifest(route("web", service="web", rules=rules))]
    loaded = ModelSnapshot().with_changes([parse_manifest(service("web", 8080)), w()])
    checked = admission.CheckedModels()
    await checked.check_loaded(loaded)
    assert checked.errors(loaded, loaded.with_changes(put), put, ()) == []
    assert whole == [loaded]  # the background check only
    broken = ModelSnapshot().with_changes([w()])  # its Service is missing
    checked = admission.CheckedModels()
    await checked.check_loaded(broken)
    assert "the stored mesh is inconsistent, 1 error(s)" in caplog.text
    assert "Service default/web does not exist" in caplog.text
    assert checked.errors(broken, broken.with_changes(put), put, ()) != []
    assert len(whole) == 3  # the apply's model checked whole
