"""``Memo.get(..., slot=...)``: an entry built for a slot replaces the one last built for
it at once (a gateway's route table, rebuilt between full rounds, holds one copy);
``Memo.each`` and ``Identities``, the keys of a gateway's 10,000 Routes made fast."""

from __future__ import annotations

from gossamer.translate.memo import Identities, Memo


def test_a_slot_keeps_only_its_last_entry() -> None:
    memo = Memo()
    one, two, three = object(), object(), object()
    memo.get("table", (one,), lambda: "one", slot="gw-1")
    memo.get("table", (two,), lambda: "two", slot="gw-2")  # another slot: both kept
    assert len(memo) == 2
    three_built = memo.get("table", (three,), lambda: "three", slot="gw-1")
    assert len(memo) == 2  # gw-1's first entry went at once
    assert memo.get("table", (three,), lambda: "x", slot="gw-1") is three_built
    assert memo.get("table", (two,), lambda: "x", slot="gw-2") == "two"
    assert memo.get("table", (one,), lambda: "rebuilt") == "rebuilt"
    memo.get("other", (one,), lambda: "a tag of its own", slot="gw-1")
    assert len(memo) == 4


def test_a_hit_does_not_replace_a_slot_and_prune_forgets_dead_slots() -> None:
    memo = Memo()
    shared, newer = object(), object()
    memo.get("table", (shared,), lambda: "shared", slot="gw-1")
    assert memo.get("table", (shared,), lambda: "other", slot="gw-2") == "shared"  # a hit
    memo.get("table", (newer,), lambda: "newer", slot="gw-2")  # gw-2 built nothing before
    assert len(memo) == 2
    assert memo.prune() == 0
    assert memo.prune() == 2  # nothing used since: both go, and their slots with them
    memo.get("table", (newer,), lambda: "again", slot="gw-2")
    assert len(memo) == 1


def test_each_is_get_for_each_item_with_the_common_inputs() -> None:
    memo = Memo()
    a, b, mesh = object(), object(), object()
    built: list[object] = []

    def build(item: object) -> tuple[object, object]:
        built.append(item)
        return (item, mesh)

    first = memo.each("rules", [a, b], (mesh, 3), build)
    assert first == [(a, mesh), (b, mesh)] and built == [a, b]
    assert memo.get("rules", (b, mesh, 3), lambda: "x") is first[1]  # the same entries
    assert memo.each("rules", [b, a], (mesh, 3), build) == [first[1], first[0]]
    assert built == [a, b]  # all hits
    assert memo.each("rules", [a], (mesh, 4), build) == [(a, mesh)] and built == [a, b, a]


def test_identities_key_objects_by_identity_whatever_holds_them() -> None:
    memo = Memo()
    routes = [[1], [2]]  # (equal lists are not the same objects)
    table = memo.get("table", (Identities(routes),), lambda: "table")
    assert memo.get("table", (Identities(list(routes)),), lambda: "again") == table
    copies = [list(r) for r in routes]
    assert memo.get("table", (Identities(copies),), lambda: "other") == "other"
    assert memo.get("table", (Identities(routes[:1]),), lambda: "fewer") == "fewer"
