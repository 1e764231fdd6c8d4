"""Snapshots on a shared base (``Snapshot.build(..., bases=...)``): the resources every
gateway routing to the same services holds are versioned once for all of them."""

from __future__ import annotations

from xds_fakes import C, E, cla, cluster

from gossamer.layered import Layered
from gossamer.xds import serializer as serializing
from gossamer.xds.serializer import Serializer
from gossamer.xds.snapshot import Snapshot


def base_of(n: int) -> tuple[dict[str, object], dict[str, object]]:
    return {f"c{i}": cluster(f"c{i}") for i in range(n)}, {f"c{i}": cla(f"c{i}") for i in range(n)}


def test_a_snapshot_on_a_base_equals_one_built_without_it() -> None:
    """Extras, and a base name bound to another message, are versioned on their own."""
    clusters, endpoints = base_of(5)
    mine = {**clusters, "extra": cluster("extra"), "c2": cluster("c2", rev=7)}
    resources = {C: mine, E: dict(endpoints)}
    plain = Snapshot.build(resources, Serializer())
    on_base = Snapshot.build(resources, Serializer(), bases={C: clusters, E: endpoints})
    assert on_base.resources == plain.resources
    assert on_base.digests == plain.digests
    assert (
        on_base.of(C)["c2"].version
        != Snapshot.build({C: clusters}, Serializer()).of(C)["c2"].version
    )


def test_snapshots_on_one_base_share_its_versioned_mapping() -> None:
    serializer = Serializer()
    clusters, endpoints = base_of(3)
    bases = {C: clusters, E: endpoints}
    one = Snapshot.build({C: dict(clusters), E: dict(endpoints)}, serializer, bases=bases)
    two = Snapshot.build({C: dict(clusters), E: dict(endpoints)}, serializer, bases=bases)
    assert one.of(C) is two.of(C) and one.of(E) is two.of(E)
    # a rebuild on the same base: the type is the very mapping, its digest kept in O(1)
    again = Snapshot.build({C: dict(clusters)}, serializer, previous=one, bases=bases)
    assert again.of(C) is one.of(C) and C not in again.diffs
    # the same names and messages in another mapping object: versioned again, equal
    other = Snapshot.build({C: dict(clusters)}, serializer, bases={C: dict(clusters)})
    assert other.of(C) is not one.of(C) and other.of(C) == one.of(C)


def test_a_base_not_wholly_held_is_not_used() -> None:
    """A base with a name the proxy's resources lack: they are versioned one by one."""
    clusters, _ = base_of(3)
    mine = {n: c for n, c in clusters.items() if n != "c1"}
    built = Snapshot.build({C: mine}, Serializer(), bases={C: clusters})
    assert set(built.of(C)) == {"c0", "c2"}


def test_the_serializer_keeps_a_few_bases_and_what_used_ones_hold() -> None:
    serializer = Serializer()
    bases = [base_of(2)[0] for _ in range(serializing.MAPPINGS_KEPT + 1)]
    first = serializer.versioned_all(C, bases[0])
    assert serializer.versioned_all(C, bases[0]) is first
    for later in bases[1:]:
        serializer.versioned_all(C, later)
    assert len(serializer._mappings) == serializing.MAPPINGS_KEPT  # the oldest dropped
    assert serializer.versioned_all(C, bases[0]) is not first  # versioned again
    # a prune keeps the encodings of a base given again since the last one, none other
    serializer.prune()
    serializer.versioned_all(C, bases[-1])
    serializer.prune()
    assert len(serializer) == len(bases[-1])


def test_a_layered_copy_of_the_base_is_read_from_its_record() -> None:
    """A ``Layered`` copy of the base (a gateway's clusters) is not walked: what was
    written to it (an extra, a replaced and a re-bound name) is all a snapshot versions
    apart, and the snapshot equals one built from a plain copy."""
    clusters, endpoints = base_of(5)
    mine: Layered[str, object] = Layered(clusters)
    mine["extra"] = cluster("extra")
    mine["c2"] = cluster("c2", rev=7)
    mine["c3"] = clusters["c3"]  # (written back as it was)
    serializer = Serializer()
    on_base = Snapshot.build(
        {C: mine, E: Layered(endpoints)}, serializer, bases={C: clusters, E: endpoints}
    )
    plain = Snapshot.build({C: dict(mine), E: dict(endpoints)}, Serializer())
    assert on_base.resources == plain.resources and on_base.digests == plain.digests
    assert on_base.of(E) is serializer.versioned_all(E, endpoints)  # nothing written: shared
    # a base name deleted from the copy: the base is not used, the copy versioned alone
    del mine["c0"]
    without = Snapshot.build({C: mine}, Serializer(), bases={C: clusters})
    assert set(without.of(C)) == {"c1", "c2", "c3", "c4", "extra"}
