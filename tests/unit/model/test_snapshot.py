"""ModelSnapshot: typed views, lookups, with_changes, from_stored."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pytest

from gossamer.errors import ValidationError
from gossamer.model import Gateway, Mesh, ModelSnapshot, Route, Service, Workload
from gossamer.model import snapshot as model_snapshot
from gossamer.store.base import StoredResource
from gossamer.types import Manifest, ResourceKey

from .builders import gateway, manifest, parse, route, service, snapshot, workload


def key(kind: str, name: str, ns: str = "default") -> ResourceKey:
    return ResourceKey(kind, ns, name)


# -- typed views -------------------------------------------------------------------------


def test_an_empty_snapshot() -> None:
    snap = ModelSnapshot()
    assert snap.revision == 0
    assert snap.services == {}
    assert snap.workloads == {}
    assert snap.gateways == {}
    assert snap.routes == {}
    assert snap.local_addresses == {}
    assert isinstance(snap.mesh, Mesh)
    assert snap.mesh.metadata.name == "default"
    assert snap.mesh.spec.trustDomain == "gossamer.local"


def test_views_are_typed_keyed_by_ref_and_sorted() -> None:
    snap = snapshot(
        service("b"),
        service("a", namespace="z"),
        service("a"),
        workload("w", "a"),
        gateway("g"),
        route("r"),
        manifest("Mesh", "m", {"trustDomain": "shop.local"}),
    )
    assert list(snap.services) == [("default", "a"), ("default", "b"), ("z", "a")]
    assert all(isinstance(s, Service) for s in snap.services.values())
    assert isinstance(snap.workloads[("default", "w")], Workload)
    assert isinstance(snap.gateways[("default", "g")], Gateway)
    assert isinstance(snap.routes[("default", "r")], Route)
    assert snap.mesh.spec.trustDomain == "shop.local"


def test_with_several_meshes_the_first_by_key_is_used() -> None:
    snap = snapshot(manifest("Mesh", "b"), manifest("Mesh", "a"))
    assert snap.mesh.metadata.name == "a"


def test_workloads_of_a_service() -> None:
    snap = snapshot(
        service("a"),
        workload("a2", "a"),
        workload("a1", "a", address="127.0.0.3"),
        workload("b1", "b"),
        workload("other-ns", "a", namespace="x"),
    )
    assert [w.metadata.name for w in snap.workloads_of(("default", "a"))] == ["a1", "a2"]
    assert [w.metadata.name for w in snap.workloads_of(("x", "a"))] == ["other-ns"]
    assert snap.workloads_of(("default", "nope")) == []


def test_routes_for_a_service_are_east_west_same_namespace_in_name_order() -> None:
    snap = snapshot(
        route("z", service="a"),
        route("m", service="a"),
        route("b-route", service="b"),
        route("ingress", gateways=["g"]),
        route("elsewhere", service="a", namespace="x"),
    )
    assert [r.metadata.name for r in snap.routes_for_service(("default", "a"))] == ["m", "z"]
    assert [r.metadata.name for r in snap.routes_for_service(("x", "a"))] == ["elsewhere"]
    assert snap.routes_for_service(("default", "nope")) == []


def test_routes_for_a_gateway() -> None:
    snap = snapshot(
        route("r2", gateways=["g", "h"]),
        route("r1", gateways=["g"]),
        route("r3", gateways=["h"]),
        route("ew", service="g"),
        route("other-ns", gateways=["g"], namespace="x"),
    )
    assert [r.metadata.name for r in snap.routes_for_gateway(("default", "g"))] == ["r1", "r2"]
    assert [r.metadata.name for r in snap.routes_for_gateway(("default", "h"))] == ["r2", "r3"]
    assert [r.metadata.name for r in snap.routes_for_gateway(("x", "g"))] == ["other-ns"]
    assert snap.routes_for_gateway(("default", "none")) == []


def test_service_port() -> None:
    snap = snapshot(service("a", ("http", 80, "http"), ("admin", 9000, "tcp")), service("b"))
    port = snap.service_port(("default", "a"), "admin")
    assert port is not None
    assert port.port == 9000
    assert snap.service_port(("default", "a"), None) is None
    b = snap.service_port(("default", "b"), None)
    assert b is not None
    assert b.port == 80
    assert snap.service_port(("default", "missing"), "http") is None


def test_a_snapshot_is_frozen() -> None:
    snap = ModelSnapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.revision = 3  # type: ignore[misc]


# -- with_changes ------------------------------------------------------------------------


def test_with_changes_adds_replaces_and_deletes_without_touching_the_original() -> None:
    a, b = parse(service("a"), service("b"))
    base = ModelSnapshot(revision=7).with_changes(puts=[a, b])
    a2 = parse(service("a", ("grpc", 9090, "grpc")))[0]
    after = base.with_changes(puts=[a2], deletes=[b.key, key("Service", "never-existed")])
    assert list(after.services) == [("default", "a")]
    assert after.services[("default", "a")] is a2
    assert list(base.services) == [("default", "a"), ("default", "b")]
    assert base.services[("default", "a")] is a
    assert after.revision == base.revision == 7


def test_new_resources_count_as_newest_and_updates_keep_their_creation() -> None:
    a, b, c = parse(service("a"), service("b"), service("c"))
    s1 = ModelSnapshot(revision=10).with_changes(puts=[a])
    assert s1.created == {a.key: 11}
    s2 = s1.with_changes(puts=[b])
    assert s2.created == {a.key: 11, b.key: 12}
    s3 = s2.with_changes(puts=[a, c])  # a is an update
    assert s3.created == {a.key: 11, b.key: 12, c.key: 13}


def test_with_changes_can_set_the_revision_and_counts_new_resources_after_it() -> None:
    a, b = parse(service("a"), service("b"))
    s1 = ModelSnapshot(revision=3).with_changes(puts=[a], revision=4)
    assert s1.revision == 4
    s2 = s1.with_changes(puts=[b], revision=9)
    assert s2.revision == 9
    assert s2.created[b.key] > 9 > s2.created[a.key]
    assert s2.with_changes(deletes=[a.key]).revision == 9  # kept when not given


def test_unchanged_resources_stay_the_same_objects() -> None:
    a, b = parse(service("a"), service("b"))
    base = ModelSnapshot().with_changes(puts=[a, b])
    after = base.with_changes(puts=parse(service("c")), deletes=[key("Service", "x")])
    assert after.resources[a.key] is a
    assert after.resources[b.key] is b


def test_a_deleted_then_re_added_resource_is_new_again() -> None:
    a, b = parse(service("a"), service("b"))
    snap = ModelSnapshot().with_changes(puts=[a]).with_changes(puts=[b])
    again = snap.with_changes(deletes=[a.key]).with_changes(puts=[a])
    assert again.created[a.key] > again.created[b.key]
    replaced = snap.with_changes(puts=[a], deletes=[a.key])  # delete first, then put
    assert replaced.created[a.key] > replaced.created[b.key]


def test_views_of_a_changed_snapshot_are_recomputed() -> None:
    snap = snapshot(service("a"))
    assert list(snap.services) == [("default", "a")]  # cache the view
    later = snap.with_changes(puts=parse(service("b")))
    assert list(later.services) == [("default", "a"), ("default", "b")]
    assert set(later.local_addresses) == {("default", "a"), ("default", "b")}


# -- from_stored -------------------------------------------------------------------------


def stored(m: Manifest, revision: int, created: int) -> StoredResource:
    r = parse(m)[0]
    return StoredResource(r.key, r.to_manifest(), revision, created)


def test_from_stored() -> None:
    rows = [
        stored(service("a"), revision=5, created=2),
        stored(workload("w", "a"), revision=4, created=4),
        stored(manifest("Mesh", "default", {"debounceMs": 7}), revision=1, created=1),
    ]
    snap = ModelSnapshot.from_stored(rows, revision=9)
    assert snap.revision == 9
    assert snap.created == {
        key("Service", "a"): 2,
        key("Workload", "w"): 4,
        key("Mesh", "default"): 1,
    }
    assert snap.services[("default", "a")] == parse(service("a"))[0]
    assert snap.mesh.spec.debounceMs == 7
    assert [w.metadata.name for w in snap.workloads_of(("default", "a"))] == ["w"]


def test_from_stored_keeps_older_resources_first_for_addresses() -> None:
    rows = [stored(service("a"), 3, 3), stored(service("b"), 3, 1)]
    snap = ModelSnapshot.from_stored(rows, revision=3)
    assert snap.created[key("Service", "b")] < snap.created[key("Service", "a")]


def test_from_stored_takes_any_record_with_key_manifest_and_create_revision() -> None:
    """The model reads stored records structurally: it does not know the store."""

    class Row(NamedTuple):
        key: ResourceKey
        manifest: Manifest
        create_revision: int

    r = parse(service("a"))[0]
    snap = ModelSnapshot.from_stored([Row(r.key, r.to_manifest(), 6)], revision=7)
    assert snap.services[("default", "a")] == r
    assert snap.created == {r.key: 6}


def test_from_stored_rejects_an_invalid_manifest() -> None:
    bad = StoredResource(key("Service", "a"), service("a", ("http", 0, "http")), 1, 1)
    with pytest.raises(ValidationError, match=r"spec.ports\[0\].port: must be 1..65535"):
        ModelSnapshot.from_stored([bad], revision=1)


def test_an_apply_knows_what_it_put_unless_it_put_many(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = parse(service("a"), service("b"), service("c"))
    base = ModelSnapshot().with_changes(puts=[a])
    one = base.with_changes(puts=[b], deletes=[a.key])
    assert one.changed_since(base) == {a.key, b.key}
    assert one.at_revision(5).changed_since(base) == {a.key, b.key}
    assert base.changed_since(one) is None and one.changed_since(one) is None
    monkeypatch.setattr(model_snapshot, "_KEYS_KEPT", 1)
    assert base.with_changes(puts=[b, c]).changed_since(base) is None  # (too many kept)
    assert base.with_changes(puts=[c]).changed_since(base) == {c.key}
