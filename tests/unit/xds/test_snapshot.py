"""Snapshots: content versions, per-type digests and the diff from the snapshot before."""

from __future__ import annotations

import hashlib
import random

import pytest
from xds_fakes import C, E, cla, resources

from gossamer.xds import snapshot
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer, content_version
from gossamer.xds.snapshot import Encoded, Snapshot, TypeDiff
from gossamer.xds.wire import any_wire


def test_content_versions_are_those_of_earlier_releases() -> None:
    """A restarted (or upgraded) control plane must compute the versions Envoy holds, or
    every proxy is sent everything again."""
    items = [("b", "2"), ("a", "1"), ("outbound|ns/svc|http", "0f3c")]
    h = hashlib.sha256()
    for name, version in sorted(items):
        h.update(name.encode() + b"\0" + version.encode() + b"\n")
    assert content_version(items) == h.hexdigest()[:16]
    assert content_version(reversed(items)) == content_version(items)


def _from_scratch(snap: Snapshot) -> dict[object, str]:
    return {t: content_version((n, v.version) for n, v in snap.of(t).items()) for t in ResourceType}


def test_digests_are_the_content_versions_of_each_type() -> None:
    serializer = Serializer()
    first = Snapshot.build(resources({"c1": 1}, {"c1": 1}, {"l1": 1}, {"r1": 1}), serializer)
    assert first.digests == _from_scratch(first)
    assert first.diffs == {}
    plain = Snapshot(first.resources)
    assert plain.digests is None
    assert {t: plain.version(t) for t in ResourceType} == first.digests


def test_a_rebuild_is_diffed_against_the_snapshot_it_replaces() -> None:
    serializer = Serializer()
    first = Snapshot.build(
        resources({"c1": 1, "c2": 1}, {"c1": 1, "c2": 1}, {"l1": 1}, {"r1": 1}), serializer
    )
    then = Snapshot.build(
        resources({"c1": 1, "c3": 1}, {"c1": 2, "c2": 1}, {"l1": 1}, {"r1": 1}),
        serializer,
        previous=first,
    )
    assert then.digests == _from_scratch(then)
    assert dict(then.diffs) == {
        C: TypeDiff(first.version(C), ("c3",), frozenset({"c2"})),
        E: TypeDiff(first.version(E), ("c1",), frozenset()),
    }
    # the same content again: no diff, the same digests
    again = Snapshot.build(
        resources({"c1": 1, "c3": 1}, {"c1": 2, "c2": 1}, {"l1": 1}, {"r1": 1}),
        Serializer(),
        previous=then,
    )
    assert again.diffs == {} and again.digests == then.digests and again == then


def test_with_resources_is_diffed_against_the_snapshot_it_patches() -> None:
    serializer = Serializer()
    first = Snapshot.build(resources({"c1": 1}, {"c1": 1, "c2": 1}, {}, {}), serializer)
    update = {
        "c2": serializer.versioned(E, "c2", cla("c2", 2)),
        "c1": serializer.versioned(E, "c1", cla("c1", 1)),  # the same content
        "c9": serializer.versioned(E, "c9", cla("c9", 1)),
    }
    then = first.with_resources(E, update, 5.0)
    assert then.created == 5.0
    assert then.digests == _from_scratch(then)
    assert dict(then.diffs) == {E: TypeDiff(first.version(E), ("c2", "c9"), frozenset())}
    # a digest-less snapshot stays digest-less: its streams walk it
    assert Snapshot(first.resources).with_resources(E, update, 0.0).digests is None
    # the same as building it in full against the snapshot it patches (but the order of
    # the changed names, which follows the updates)
    built = Snapshot.build(
        resources({"c1": 1}, {"c1": 1, "c2": 2, "c9": 1}, {}, {}), serializer, 5.0, first
    )
    assert built == then and built.digests == then.digests
    assert {t: set(d.changed) for t, d in built.diffs.items()} == {E: {"c2", "c9"}}
    # updates that change nothing: no diff, the same digests
    same = then.with_resources(E, {"c1": update["c1"]}, 6.0)
    assert same.diffs == {} and same.digests == then.digests and same == then


def test_forget_drops_a_replaced_encoding_at_once() -> None:
    serializer = Serializer()
    old, new, other = cla("c", 1), cla("c", 2), cla("d", 3)
    before = serializer.versioned(ResourceType.ENDPOINT, "c", old)
    kept = serializer.versioned(ResourceType.ENDPOINT, "d", other)
    after = serializer.versioned(ResourceType.ENDPOINT, "c", new)
    assert len(serializer) == 3
    serializer.forget([before, before])
    assert len(serializer) == 2
    assert serializer.versioned(ResourceType.ENDPOINT, "c", new) is after
    assert serializer.versioned(ResourceType.ENDPOINT, "d", other) is kept
    again = serializer.versioned(ResourceType.ENDPOINT, "c", old)  # encoded anew
    assert again is not before and again == before
    serializer.prune()  # (everything was used since the last prune)
    assert len(serializer) == 3


def test_a_known_encoding_is_used_while_its_resource_is_the_one_encoded() -> None:
    """``encoded`` parts are taken as the resource's bytes (so they must be its
    deterministic encoding: the translator's tests check it), and only for the very
    object they were made from; another object of that name is encoded on its own."""
    one, other = cla("c", 1), cla("c", 1)
    parts = (b"\x0a\x01c", b"given")  # (not cla's encoding: shows whose bytes are used)
    known = {E: {"c": Encoded(one, parts)}}
    used = Snapshot.build({E: {"c": one}}, Serializer(), encoded=known).of(E)["c"]
    assert used.wire == any_wire(E.url, b"\x0a\x01cgiven")
    assert used.version == hashlib.sha256(b"\x0a\x01cgiven").hexdigest()[:16]
    own = Snapshot.build({E: {"c": other}}, Serializer(), encoded=known).of(E)["c"]
    assert own.wire == any_wire(E.url, other.SerializeToString(deterministic=True))


def test_a_known_encoding_is_kept_by_its_parts_not_its_message() -> None:
    """A resource given with its parts (a gateway's table) is known again by its name and
    last part, whichever message object it comes with, and the serializer keeps no
    message of it: each gateway's decoded 10,000-host table (15 MB) was kept there."""
    serializer = Serializer()
    shared = b"\x12\x03abc"  # (the parts' bytes are taken as they are)
    first = serializer.versioned(E, "c", cla("c", 1), (b"\x0a\x01c", shared))
    again = serializer.versioned(E, "c", cla("c", 2), (b"\x0a\x01c", shared))
    assert again is first
    other = serializer.versioned(E, "d", cla("d", 1), (b"\x0a\x01d", shared))
    assert other is not first and other.wire == any_wire(E.url, b"\x0a\x01d" + shared)
    kept = [held for held, _ in serializer._cache.values()]
    assert all(held is shared for held in kept) and len(kept) == 2
    serializer.forget([first])
    assert len(serializer) == 1


def test_a_large_type_is_patched_from_its_kept_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large type keeps its digest's lines in name order: each patch puts the changed
    lines in their places (no sort), a new name sorts them afresh; every digest is the
    content version of the whole type."""
    monkeypatch.setattr(snapshot, "ORDERED_FROM", 3)
    serializer = Serializer()
    rng = random.Random(7)
    names = [f"c{i}" for i in range(12)]
    snap = Snapshot.build(resources({}, {n: 1 for n in names[:8]}, {}, {}), serializer)
    kept = None
    for step in range(40):
        grow = step % 7 == 6 and len(snap.of(E)) < len(names)
        picked = rng.sample(sorted(snap.of(E)), 2)
        if grow:
            picked.append(names[len(snap.of(E))])
        update = {n: serializer.versioned(E, n, cla(n, rng.randint(1, 4))) for n in picked}
        then = snap.with_resources(E, update, float(step))
        assert then.digests == _from_scratch(then), step
        if then.diffs:
            lines = then.__dict__["_lines"][E]
            if kept is not None and not grow:
                assert lines.order is kept.order  # the same names: no sort
            kept = lines
        snap = then
    # a small type keeps nothing
    monkeypatch.setattr(snapshot, "ORDERED_FROM", 100)
    small = snap.with_resources(E, {"c0": serializer.versioned(E, "c0", cla("c0", 9))}, 0.0)
    assert "_lines" not in small.__dict__ and small.digests == _from_scratch(small)
