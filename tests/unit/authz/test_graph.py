"""The model's rules: every refused change names the problem and changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gossamer.authz.graph import Graph, Kind
from gossamer.authz.prohibitions import Prohibition
from gossamer.authz.snapshot import dump, load
from gossamer.errors import GossamerError, NotFoundError, ValidationError


@pytest.fixture
def g() -> Graph:
    g = Graph(["read", "write"])
    g.create_node("pc1", Kind.PC)
    g.create_node("ua1", Kind.UA, ["pc1"])
    g.create_node("ua2", Kind.UA, ["ua1"])
    g.create_node("oa1", Kind.OA, ["pc1"])
    g.create_node("oa2", Kind.OA, ["oa1"])
    g.create_node("u1", Kind.U, ["ua2"])
    g.create_node("o1", Kind.O, ["oa2"])
    g.associate("ua1", "oa1", ["read"])
    g.add_prohibition(
        Prohibition(
            "p1", g.rights.mask(["write"]), ((g.id("oa2"), False),), True, subject=g.id("u1")
        )
    )
    return g


REFUSALS: list[tuple[str, Callable[[Graph], object], type[GossamerError], str]] = [
    ("cycle", lambda g: g.assign("ua1", ["ua2"]), ValidationError, "cycle"),
    ("self cycle", lambda g: g.assign("oa1", ["oa1"]), ValidationError, "cycle"),
    ("U to OA", lambda g: g.assign("u1", ["oa1"]), ValidationError, "cannot be assigned"),
    (
        "OA to UA",
        lambda g: g.create_node("x", Kind.OA, ["ua1"]),
        ValidationError,
        "cannot be assigned",
    ),
    ("dangling create", lambda g: g.create_node("x", Kind.UA, []), ValidationError, "dangling"),
    (
        "PC with parent",
        lambda g: g.create_node("x", Kind.PC, ["pc1"]),
        ValidationError,
        "policy class",
    ),
    (
        "duplicate",
        lambda g: g.create_node("oa1", Kind.OA, ["pc1"]),
        ValidationError,
        "already exists",
    ),
    (
        "missing parent",
        lambda g: g.create_node("x", Kind.OA, ["nope"]),
        NotFoundError,
        "does not exist",
    ),
    ("dangling deassign", lambda g: g.deassign("o1", ["oa2"]), ValidationError, "dangling"),
    ("delete with children", lambda g: g.delete_node("oa2"), ValidationError, "assigned to it"),
    ("delete in prohibition", lambda g: g.delete_node("u1"), ValidationError, "prohibition"),
    (
        "delete admin node",
        lambda g: g.delete_node("PM_ADMIN:base"),
        ValidationError,
        "administrative",
    ),
    (
        "association from OA",
        lambda g: g.associate("oa1", "oa2", ["read"]),
        ValidationError,
        "user attribute",
    ),
    (
        "association to PC",
        lambda g: g.associate("ua1", "pc1", ["read"]),
        ValidationError,
        "UA, OA or O",
    ),
    (
        "unknown right",
        lambda g: g.associate("ua1", "oa2", ["fly"]),
        ValidationError,
        "unknown access right",
    ),
    (
        "prohibition on OA",
        lambda g: g.add_prohibition(
            Prohibition("p2", 1, ((g.id("oa1"), False),), True, subject=g.id("oa2"))
        ),
        ValidationError,
        "subject",
    ),
    (
        "prohibition without containers",
        lambda g: g.add_prohibition(
            Prohibition("p2", g.rights.mask(["read"]), (), True, subject=g.id("u1"))
        ),
        ValidationError,
        "container",
    ),
    (
        "duplicate prohibition",
        lambda g: g.add_prohibition(
            Prohibition(
                "p1", g.rights.mask(["read"]), ((g.id("oa1"), False),), True, subject=g.id("u1")
            )
        ),
        ValidationError,
        "already exists",
    ),
    (
        "wildcard prohibition",
        lambda g: g.add_prohibition(
            Prohibition(
                "p2", g.rights.mask(["*"]), ((g.id("oa1"), False),), True, subject=g.id("u1")
            )
        ),
        ValidationError,
        "literal",
    ),
    (
        "drop a granted right",
        lambda g: g.set_resource_rights(["write"]),
        ValidationError,
        "dissociate",
    ),
    ("half a transaction", lambda g: _half(g), ValidationError, "cycle"),
]


def _half(g: Graph) -> None:
    with g.transaction():
        g.create_node("new", Kind.OA, ["oa1"])
        g.associate("ua2", "new", ["write"])
        g.assign("oa2", ["new"])  # fine
        g.assign("oa1", ["new"])  # cycle: oa1 -> new -> oa1


@pytest.mark.parametrize(
    ("case", "change", "error", "words"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_refused_change_leaves_graph_untouched(
    g: Graph,
    case: str,
    change: Callable[[Graph], object],
    error: type[GossamerError],
    words: str,
) -> None:
    before = dump(g)
    with pytest.raises(error) as info:
        change(g)
    assert words in str(info.value)
    assert dump(g) == before


def test_accepted_changes_and_round_trip(g: Graph) -> None:
    g.assign("o1", ["oa1"])
    g.deassign("o1", ["oa2"])
    g.create_node("o2", Kind.O, ["pc1"])
    g.remove_prohibition("p1")
    g.delete_node("u1")
    assert g.find("u1") is None
    assert g.parents(g.id("o1")) == (g.id("oa1"),)
    assert dump(load(dump(g))) == dump(g)


def test_delete_node_takes_its_associations(g: Graph) -> None:
    g.create_node("ua3", Kind.UA, ["pc1"])
    g.associate("ua3", "oa2", ["read"])
    g.delete_node("ua3")
    assert all(g.name(u) != "ua3" for u in g.assoc_in.get(g.id("oa2"), {}))
