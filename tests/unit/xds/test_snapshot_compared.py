"""Large mappings compared once (``Serializer.compared``): the gateways sharing their
10,000 clusters before and after a change compare the same two mappings, so the
comparison is made once for all of them, and each gets the diff and digest it would get
on its own."""

from __future__ import annotations

from typing import Any

import pytest
from xds_fakes import C, cluster

from gossamer.xds import snapshot as snapshots
from gossamer.xds.serializer import PairMemo, Serializer
from gossamer.xds.snapshot import ORDERED_FROM, Snapshot

N = ORDERED_FROM + 1  # (one is removed below)


def clusters(changed: int | None = None) -> dict[str, Any]:
    out = {f"c{i}": cluster(f"c{i}") for i in range(N)}
    if changed is not None:
        out[f"c{changed}"] = cluster(f"c{changed}", rev=9)
    return out


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the mappings compared (each call of ``snapshot._compare`` on a
    non-empty one: the types a snapshot lacks are new empty mappings each time)."""
    calls: list[int] = []
    compare = snapshots._compare

    def counted(old: Any, new: Any) -> Any:
        if new:
            calls.append(len(new))
        return compare(old, new)

    monkeypatch.setattr(snapshots, "_compare", counted)
    return calls


def test_gateways_sharing_mappings_compare_them_once(comparisons: list[int]) -> None:
    serializer = Serializer()
    before, after = clusters(), clusters()
    after["c3"] = cluster("c3", rev=9)
    after.pop("c5")
    held = [Snapshot.build({C: before}, serializer, bases={C: before}) for _ in range(3)]
    built = [Snapshot.build({C: after}, serializer, previous=p, bases={C: after}) for p in held]
    assert comparisons == [N - 1]  # (three gateways, one comparison)
    alone = Snapshot.build({C: dict(after)}, Serializer(), previous=held[0])
    for snap in built:
        assert snap.digests == alone.digests
        assert snap.diffs[C] == alone.diffs[C]
        assert snap.diffs[C].changed == ("c3",) and snap.diffs[C].removed == {"c5"}


def test_unchanged_content_in_new_mappings_keeps_the_digest(comparisons: list[int]) -> None:
    serializer = Serializer()
    first, same = clusters(), clusters()
    same.update(first)  # other mapping objects, the same messages
    held = [Snapshot.build({C: first}, serializer, bases={C: first}) for _ in range(2)]
    built = [Snapshot.build({C: same}, serializer, previous=p, bases={C: same}) for p in held]
    assert len(comparisons) == 1
    for old, snap in zip(held, built, strict=True):
        assert snap.of(C) is not old.of(C) and snap.digests == old.digests
        assert C not in snap.diffs


def test_small_types_are_compared_per_snapshot(comparisons: list[int]) -> None:
    serializer = Serializer()
    small = {"a": cluster("a")}
    changed = {"a": cluster("a", rev=2)}
    held = [Snapshot.build({C: small}, serializer, bases={C: small}) for _ in range(2)]
    for p in held:
        Snapshot.build({C: changed}, serializer, previous=p, bases={C: changed})
    assert comparisons == [1, 1]


def test_a_pair_memo_knows_its_objects_by_identity_and_keeps_a_few() -> None:
    memo: PairMemo[int] = PairMemo(2)
    a, b, c = object(), object(), object()
    assert memo.get(a, b, lambda: 1) == 1
    assert memo.get(a, b, lambda: 2) == 1  # kept
    assert memo.get(b, a, lambda: 3) == 3  # (order matters)
    assert memo.get(a, c, lambda: 4) == 4  # a third pair: the first is dropped
    assert memo.get(a, b, lambda: 5) == 5
