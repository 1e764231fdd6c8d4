"""Decision scenarios of NIST's reference (policy-machine-core ``AccessQuerierTest``,
commit 0ae045e5532b4960c9c78187dd17c9e21f90f8d8 era), restated as AccessPolicy specs.

Each scenario is checked through the cached decider *and* the from-scratch reference.
"""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.authz import reference
from gossamer.authz.decider import Decider
from gossamer.authz.graph import Graph
from gossamer.authz.policy import build
from gossamer.authz.rights import ADMIN_RIGHTS, QUERY_RIGHTS
from gossamer.model.access_policy import AccessPolicy

RWE = ["read", "write", "execute"]


def graph_of(**spec: Any) -> Graph:
    spec.setdefault("accessRights", RWE)
    doc = {
        "apiVersion": "gossamer.dev/v1",
        "kind": "AccessPolicy",
        "metadata": {"name": "scenario"},
        "spec": spec,
    }
    return build([AccessPolicy.model_validate(doc)])[0]


def rights(g: Graph, user: str, target: str, process: str | None = None) -> set[str]:
    d = Decider(g)
    cached = d.privileges(g.id(user), g.id(target), process)
    assert cached == reference.privileges(g, g.id(user), g.id(target), process)
    assert d.privileges(g.id(user), g.id(target), process) == cached  # warm hit
    return set(g.rights.names(cached))


def two_pcs(assoc1: list[str], assoc2: list[str] | None) -> Graph:
    associations = [{"userAttribute": "ua1", "target": "oa1", "rights": assoc1}]
    if assoc2 is not None:
        associations.append({"userAttribute": "ua2", "target": "oa2", "rights": assoc2})
    return graph_of(
        policyClasses=["pc1", "pc2"],
        userAttributes={"ua1": ["pc1"], "ua2": ["pc2"]},
        objectAttributes={"oa1": ["pc1"], "oa2": ["pc2"]},
        users={"u1": ["ua1", "ua2"]},
        objects={"o1": ["oa1", "oa2"]},
        associations=associations,
    )


def test_every_policy_class_must_grant_a_right() -> None:
    assert rights(two_pcs(["read"], ["read", "write"]), "u1", "o1") == {"read"}
    assert rights(two_pcs(["read", "write"], ["read"]), "u1", "o1") == {"read"}
    assert rights(two_pcs(["read", "write"], None), "u1", "o1") == set()
    assert rights(two_pcs(["*"], None), "u1", "o1") == set()
    assert rights(two_pcs(["*"], ["read", "write"]), "u1", "o1") == {"read", "write"}


def test_wildcard_grants_every_admin_and_resource_right() -> None:
    g = graph_of(
        policyClasses=["pc1"],
        userAttributes={"ua1": ["pc1"], "ua2": ["pc1"]},
        objectAttributes={"oa1": ["pc1"]},
        users={"u1": ["ua1"]},
        objects={"o1": ["oa1"]},
        associations=[
            {"userAttribute": "ua1", "target": "oa1", "rights": ["*"]},
            {"userAttribute": "ua2", "target": "oa1", "rights": ["read"]},
        ],
    )
    assert rights(g, "u1", "o1") == {*RWE, *ADMIN_RIGHTS, *QUERY_RIGHTS}


def test_resource_wildcard_keeps_only_resource_rights() -> None:
    g = graph_of(
        policyClasses=["pc1"],
        userAttributes={"ua1": ["pc1"]},
        objectAttributes={"oa1": ["pc1"]},
        users={"u1": ["ua1"]},
        objects={"o1": ["oa1"]},
        associations=[{"userAttribute": "ua1", "target": "oa1", "rights": ["*r", "assign"]}],
    )
    assert rights(g, "u1", "o1") == set(RWE)


@pytest.mark.parametrize("user_chain", [True, False])
@pytest.mark.parametrize("object_chain", [True, False])
def test_inheritance_on_both_sides(user_chain: bool, object_chain: bool) -> None:
    """ua1 in ua2, oa1 in oa2: a user inherits its attributes' grants; an object its
    containers'."""
    g = graph_of(
        policyClasses=["pc1"],
        userAttributes={"ua2": ["pc1"], "ua1": ["ua2"]},
        objectAttributes={"oa2": ["pc1"], "oa1": ["oa2"]},
        users={"u1": ["ua1"]},
        objects={"o1": ["oa1"]},
        associations=[
            {
                "userAttribute": "ua2" if user_chain else "ua1",
                "target": "oa2" if object_chain else "oa1",
                "rights": ["read"],
            },
            {"userAttribute": "ua1", "target": "oa1", "rights": ["write"]},
        ],
    )
    assert rights(g, "u1", "o1") == {"read", "write"}
    assert rights(g, "u1", "oa2") == ({"read"} if object_chain else set())


def test_grants_add_up_within_a_policy_class() -> None:
    g = graph_of(
        policyClasses=["pc1"],
        userAttributes={"ua1": ["pc1"], "ua2": ["pc1"]},
        objectAttributes={"oa1": ["pc1"]},
        users={"u1": ["ua1", "ua2"]},
        objects={"o1": ["oa1"]},
        associations=[
            {"userAttribute": "ua1", "target": "oa1", "rights": ["read"]},
            {"userAttribute": "ua2", "target": "oa1", "rights": ["write"]},
        ],
    )
    assert rights(g, "u1", "o1") == {"read", "write"}


def test_no_association_on_the_path_means_nothing() -> None:
    g = graph_of(
        policyClasses=["pc1"],
        userAttributes={"ua1": ["pc1"], "ua2": ["pc1"]},
        objectAttributes={"oa1": ["pc1"], "oa2": ["pc1"]},
        users={"u1": ["ua2"]},
        objects={"o1": ["oa2"]},
        associations=[{"userAttribute": "ua1", "target": "oa1", "rights": ["read"]}],
    )
    assert rights(g, "u1", "o1") == set()


def test_user_attribute_may_grant_in_another_policy_class() -> None:
    g = graph_of(
        policyClasses=["pc1", "pc2"],
        userAttributes={"ua1": ["pc1"], "ua2": ["pc1"]},
        objectAttributes={"oa1": ["pc1"], "oa2": ["pc2"]},
        users={"u1": ["ua1", "ua2"]},
        objects={"o1": ["oa1", "oa2"]},
        associations=[
            {"userAttribute": "ua1", "target": "oa1", "rights": ["read"]},
            {"userAttribute": "ua2", "target": "oa2", "rights": ["read", "write"]},
        ],
    )
    assert rights(g, "u1", "o1") == {"read"}


def test_attribute_in_two_policy_classes() -> None:
    g = graph_of(
        policyClasses=["pc1", "pc2"],
        userAttributes={"ua1": ["pc1"]},
        objectAttributes={"oa1": ["pc1", "pc2"]},
        users={"u1": ["ua1"]},
        objects={"o1": ["oa1"]},
        associations=[{"userAttribute": "ua1", "target": "oa1", "rights": ["read"]}],
    )
    assert rights(g, "u1", "o1") == {"read"}


def test_association_on_an_object_and_on_a_user_attribute() -> None:
    g = graph_of(
        policyClasses=["pc1"],
        userAttributes={"ua1": ["pc1"], "ua9": ["pc1"]},
        objectAttributes={"oa1": ["pc1"]},
        users={"u1": ["ua1"], "u9": ["ua9"]},
        objects={"o1": ["oa1"], "o2": ["oa1"]},
        associations=[
            {"userAttribute": "ua1", "target": "o1", "rights": ["write"]},
            {"userAttribute": "ua1", "target": "ua9", "rights": ["read"]},
        ],
    )
    assert rights(g, "u1", "o1") == {"write"}
    assert rights(g, "u1", "o2") == set()
    assert rights(g, "u1", "u9") == {"read"}


PROHIBITION_BASE: dict[str, Any] = dict(
    policyClasses=["pc1"],
    userAttributes={"ua1": ["pc1"]},
    objectAttributes={"oa1": ["pc1"], "oa2": ["pc1"], "oa3": ["pc1"]},
    users={"u1": ["ua1"]},
    objects={"o12": ["oa1", "oa2"], "o1": ["oa1"], "o3": ["oa3"]},
    associations=[
        {"userAttribute": "ua1", "target": t, "rights": ["read", "write"]}
        for t in ("oa1", "oa2", "oa3")
    ],
)


@pytest.mark.parametrize(
    ("include", "exclude", "conjunctive", "denied_on"),
    [
        (["oa1", "oa2"], [], True, {"o12"}),
        (["oa1", "oa2"], [], False, {"o12", "o1"}),
        (["oa1"], ["oa2"], True, {"o1"}),
        (["oa1"], ["oa2"], False, {"o12", "o1", "o3"}),
        ([], ["oa1"], True, {"o3"}),
        ([], ["oa1", "oa3"], False, {"o12", "o1", "o3"}),
        ([], ["oa1", "oa3"], True, set()),
        (["o1"], [], True, {"o1"}),
    ],
)
def test_prohibition_containers(
    include: list[str], exclude: list[str], conjunctive: bool, denied_on: set[str]
) -> None:
    g = graph_of(
        **PROHIBITION_BASE,
        prohibitions=[
            {
                "name": "p",
                "subject": "u1",
                "rights": ["write"],
                "include": include,
                "exclude": exclude,
                "conjunctive": conjunctive,
            }
        ],
    )
    for o in ("o12", "o1", "o3"):
        assert rights(g, "u1", o) == ({"read"} if o in denied_on else {"read", "write"}), o


def test_prohibition_on_a_user_attribute_reaches_its_members() -> None:
    g = graph_of(
        **PROHIBITION_BASE,
        prohibitions=[{"name": "p", "subject": "ua1", "rights": ["read"], "include": ["oa3"]}],
    )
    assert rights(g, "u1", "o3") == {"write"}
    assert rights(g, "u1", "o1") == {"read", "write"}


def test_process_prohibition_applies_only_to_that_process() -> None:
    g = graph_of(
        **PROHIBITION_BASE,
        prohibitions=[
            {
                "name": "p",
                "subject": "u1",
                "process": "123",
                "rights": ["write"],
                "include": ["oa1"],
            }
        ],
    )
    assert rights(g, "u1", "o1") == {"read", "write"}
    assert rights(g, "u1", "o1", process="123") == {"read"}
    assert rights(g, "u1", "o1", process="456") == {"read", "write"}


def test_explain_example_of_the_reference() -> None:
    """u1 gets read but not write on o1: p1 (include oa1) holds, p2 (outside oa1) not."""
    g = graph_of(
        policyClasses=["pc1", "pc2"],
        userAttributes={"ua1": ["pc1"], "ua2": ["pc2"]},
        objectAttributes={"oa1": ["pc1"], "oa2": ["pc2"], "oa3": ["oa2"]},
        users={"u1": ["ua1", "ua2"]},
        objects={"o1": ["oa1", "oa3"]},
        associations=[
            {"userAttribute": "ua1", "target": "oa1", "rights": ["read", "write"]},
            {"userAttribute": "ua2", "target": "oa2", "rights": ["read", "write"]},
        ],
        prohibitions=[
            {
                "name": "p1",
                "subject": "u1",
                "rights": ["write"],
                "include": ["oa1"],
                "conjunctive": True,
            },
            {
                "name": "p2",
                "subject": "u1",
                "rights": ["write"],
                "exclude": ["oa1"],
                "conjunctive": True,
            },
        ],
    )
    assert rights(g, "u1", "o1") == {"read"}
    names = [p.name for p in Decider(g).satisfied_prohibitions(g.id("u1"), g.id("o1"))]
    assert names == ["p1"]


def test_rights_on_a_policy_class_come_from_the_admin_policy() -> None:
    g = graph_of(
        policyClasses=["pc1"],
        userAttributes={"ua1": ["pc1"]},
        objectAttributes={"oa1": ["pc1"]},
        users={"u1": ["ua1"]},
        associations=[{"userAttribute": "ua1", "target": "oa1", "rights": ["read"]}],
    )
    assert rights(g, "u1", "pc1") == set()
    g.associate("ua1", "PM_ADMIN:policy_classes", ["create_object_attribute"])
    assert rights(g, "u1", "pc1") == {"create_object_attribute"}
    # ... and they are added in every policy class of a node assigned directly to one
    assert rights(g, "u1", "oa1") == {"read", "create_object_attribute"}


def test_end_user_by_attributes() -> None:
    """An end user is decided by the attributes its claims map to (no node per person)."""
    g = graph_of(**PROHIBITION_BASE)
    d = Decider(g)
    subject = (g.id("ua1"),)
    assert d.privileges(subject, g.id("o1")) == reference.privileges(g, subject, g.id("o1"))
    assert set(g.rights.names(d.privileges(subject, g.id("o1")))) == {"read", "write"}
    both = (g.id("ua1"), g.id("ua1"))  # order and repeats do not matter
    assert d.privileges(both, g.id("o1")) == d.privileges(subject, g.id("o1"))
    assert d.statistics().user_views == 3  # pc1, ua1 and one view for the tuple
