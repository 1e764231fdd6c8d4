"""explain and access, on the reference's explain example (``AccessQuerierTest.testExplain``)."""

from __future__ import annotations

from tests.unit.authz.test_scenarios import graph_of

from gossamer.authz.decider import Decider
from gossamer.authz.explain import access, explain
from gossamer.authz.graph import Graph


def example() -> Graph:
    return graph_of(
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


def test_explain_lists_paths_grants_and_prohibitions() -> None:
    e = explain(example(), "u1", "o1")
    assert e.rights == ["read"]
    assert e.denied == ["write"]
    assert e.prohibitions == {"p1": ["write"]}
    by_pc = {pc.policyClass: pc for pc in e.policyClasses}
    assert set(by_pc) == {"pc1", "pc2"}
    assert by_pc["pc1"].rights == ["read", "write"]
    [path1] = by_pc["pc1"].paths
    assert [s.node for s in path1] == ["o1", "oa1", "pc1"]
    assert [(g.userAttribute, g.rights, g.userPaths) for g in path1[1].grants] == [
        ("ua1", ["read", "write"], [["u1", "ua1"]])
    ]
    [path2] = by_pc["pc2"].paths
    assert [s.node for s in path2] == ["o1", "oa3", "oa2", "pc2"]
    assert path2[1].grants == []
    assert e.to_data()["policyClasses"][0]["paths"][0][1]["grants"][0]["userAttribute"] == "ua1"


def test_explain_shows_every_user_path_to_a_granting_attribute() -> None:
    g = graph_of(
        policyClasses=["pc1"],
        userAttributes={"ua1": ["pc1"], "ua2": ["ua1"], "ua3": ["ua1"]},
        objectAttributes={"oa1": ["pc1"]},
        users={"u1": ["ua2", "ua3"]},
        objects={"o1": ["oa1"]},
        associations=[{"userAttribute": "ua1", "target": "oa1", "rights": ["read"]}],
    )
    e = explain(g, "u1", "o1")
    grant = e.policyClasses[0].paths[0][1].grants[0]
    assert sorted(grant.userPaths) == [["u1", "ua2", "ua1"], ["u1", "ua3", "ua1"]]


def test_access_lists_every_target_with_rights() -> None:
    g = example()
    assert access(Decider(g), "u1") == {
        "o1": ["read"],
        "oa1": ["read"],
        "oa2": ["read"],
        "oa3": ["read"],
    }
    g.remove_prohibition("p2")
    assert access(Decider(g), "u1") == {
        "o1": ["read"],
        "oa1": ["read"],
        "oa2": ["read", "write"],
        "oa3": ["read", "write"],
    }
