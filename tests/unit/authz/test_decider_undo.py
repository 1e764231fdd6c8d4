"""Undone changes and the decider's caches: an undo that removes nodes (and frees the
newest ids for the next creations) leaves no cached view or decision behind."""

from __future__ import annotations

import pytest

from gossamer.authz import reference
from gossamer.authz.decider import Decider
from gossamer.authz.graph import ADMIN_POLICY_CLASSES, Graph, Kind
from gossamer.errors import ValidationError


def small() -> tuple[Graph, Decider]:
    g = Graph(["read", "write"])
    g.create_node("rbac", Kind.PC)
    g.create_node("docs", Kind.OA, ["rbac"])
    g.create_node("staff", Kind.UA, ["rbac"])
    g.create_node("alice", Kind.U, ["staff"])
    g.associate("staff", "docs", ["read"])
    return g, Decider(g)


def test_decisions_after_a_refused_transaction_that_created_nodes() -> None:
    g, d = small()
    alice = g.id("alice")
    with pytest.raises(ValidationError), g.transaction():
        g.create_node("reports", Kind.OA, ["docs"])
        g.create_node("team", Kind.UA, ["staff"])
        g.assign("alice", ["team"])
        g.associate("team", "reports", ["write"])
        assert d.privileges(alice, g.id("reports")) == g.rights.mask(["read", "write"])
        g.create_node("reports", Kind.O, ["docs"])  # a duplicate name: refused
    assert g.find("reports") is None
    assert d.privileges(alice, g.id("docs")) == g.rights.mask(["read"])
    # the freed ids go to new nodes: nothing cached about the old ones may answer for them
    g.create_node("secret", Kind.OA, ["rbac"])
    assert (
        d.privileges(alice, g.id("secret")) == 0 == reference.privileges(g, alice, g.id("secret"))
    )


def test_a_decision_on_an_undone_policy_class_does_not_answer_for_its_id() -> None:
    """Decisions on a policy class are rights on PM_ADMIN:policy_classes, cached under the
    class's id; once the class is undone that id names another node."""
    g, d = small()
    g.associate("staff", ADMIN_POLICY_CLASSES, ["read"])
    g.create_node("vault", Kind.OA, ["rbac"])
    alice = g.id("alice")
    with pytest.raises(ValidationError), g.transaction():
        pc = g.create_node("abac", Kind.PC)
        assert d.privileges(alice, pc) == g.rights.mask(["read"])
        g.create_node("abac", Kind.PC)  # refused
    secret = g.create_node("secret", Kind.OA, ["vault"])  # nothing grants alice rights here
    assert secret == pc  # the id was reused
    assert d.privileges(alice, secret) == 0 == reference.privileges(g, alice, secret)
