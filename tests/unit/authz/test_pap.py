"""Administrative commands: checked against the caller's rights, all or nothing; obligations."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.authz.decider import Decider
from gossamer.authz.graph import Graph
from gossamer.authz.pap import PAP
from gossamer.authz.snapshot import dump
from gossamer.errors import AccessDeniedError, ValidationError
from gossamer.model.access_commands import parse_commands


def cmds(*raw: dict[str, Any]) -> list[Any]:
    return parse_commands(list(raw))


@pytest.fixture
def pap() -> PAP:
    g = Graph()
    pap = PAP(g, Decider(g))
    pap.bootstrap()
    pap.execute(
        "admin",
        cmds(
            {"op": "create_policy_class", "name": "mesh"},
            {"op": "create_object_attribute", "name": "services", "parents": ["mesh"]},
            {"op": "create_user_attribute", "name": "workloads", "parents": ["mesh"]},
            {"op": "create_object_attribute", "name": "cart", "parents": ["services"]},
            {"op": "create_user", "name": "web", "parents": ["workloads"]},
        ),
    )
    return pap


def test_bootstrap_admin_administers_nodes_under_policy_classes(pap: PAP) -> None:
    g = pap.graph
    assert g.kind(g.id("cart")).name == "OA"
    assert [e.cause for e in pap.journal] == ["bootstrap", "admin"]
    pap.bootstrap()  # a second start does not bootstrap again
    assert len(pap.journal) == 2


def test_denied_command_changes_nothing(pap: PAP) -> None:
    before, journal = dump(pap.graph), list(pap.journal)
    with pytest.raises(AccessDeniedError, match="'create_object' on 'cart'"):
        pap.execute(
            "admin",
            cmds(
                {"op": "create_object_attribute", "name": "ok", "parents": ["services"]},
                {"op": "create_object", "name": "items", "parents": ["cart"]},
            ),
        )
    assert dump(pap.graph) == before
    assert pap.journal == journal


def test_non_admin_cannot_create_policy_classes(pap: PAP) -> None:
    with pytest.raises(AccessDeniedError, match="create_policy_class"):
        pap.execute("web", cmds({"op": "create_policy_class", "name": "mine"}))
    assert pap.graph.find("mine") is None


def test_rights_granted_in_the_graph_are_what_counts(pap: PAP) -> None:
    pap.execute(
        "admin",
        cmds(
            {
                "op": "associate",
                "userAttribute": "workloads",
                "target": "services",
                "rights": ["create_object", "GET"],
            }
        ),
    )
    pap.execute("web", cmds({"op": "create_object", "name": "items", "parents": ["cart"]}))
    with pytest.raises(AccessDeniedError, match="'assign'"):
        pap.execute("web", cmds({"op": "assign", "child": "items", "parents": ["services"]}))


def test_invalid_command_names_its_index(pap: PAP) -> None:
    before = dump(pap.graph)
    with pytest.raises(ValidationError, match=r"commands\[1\]"):
        pap.execute(
            "admin",
            cmds(
                {"op": "create_object_attribute", "name": "a", "parents": ["services"]},
                {"op": "create_object_attribute", "name": "cart", "parents": ["services"]},
            ),
        )
    assert dump(pap.graph) == before


def obligation(name: str, response: list[dict[str, Any]], **event: Any) -> dict[str, Any]:
    return {
        "op": "create_obligation",
        "obligation": {"name": name, "author": "admin", "event": event, "response": response},
    }


def test_obligation_fires_on_matching_event(pap: PAP) -> None:
    # the author needs rights below "services" for the response: delegate them
    pap.execute(
        "admin",
        cmds(
            {
                "op": "associate",
                "userAttribute": "gossamer:admins",
                "target": "services",
                "rights": ["*a"],
            }
        ),
    )
    pap.execute(
        "admin",
        cmds(
            obligation(
                "grant-new-services",
                [
                    {
                        "op": "associate",
                        "userAttribute": "workloads",
                        "target": "{target}",
                        "rights": ["GET"],
                    }
                ],
                operations=["create_object_attribute"],
                targets=["services"],
            )
        ),
    )
    pap.execute(
        "admin", cmds({"op": "create_object_attribute", "name": "orders", "parents": ["services"]})
    )
    g = pap.graph
    assert pap.decider.check(g.id("web"), g.id("orders"), "GET")
    fired = list(pap.epp.history)
    assert [(f.obligation, f.event.target, f.error) for f in fired] == [
        ("grant-new-services", "orders", None)
    ]
    assert pap.journal[-1].cause == "obligation:grant-new-services"
    # events outside the pattern do not fire it
    pap.execute("admin", cmds({"op": "create_policy_class", "name": "other"}))
    assert len(pap.epp.history) == 1


def test_response_runs_with_the_authors_rights(pap: PAP) -> None:
    pap.execute(
        "admin",
        cmds(
            obligation(
                "grant-new-services",
                [
                    {
                        "op": "associate",
                        "userAttribute": "workloads",
                        "target": "{target}",
                        "rights": ["GET"],
                    }
                ],
                operations=["create_object_attribute"],
                targets=["services"],
            )
        ),
    )
    pap.execute(
        "admin", cmds({"op": "create_object_attribute", "name": "orders", "parents": ["services"]})
    )
    assert "'associate_to' on 'orders'" in (pap.epp.history[-1].error or "")


def test_failed_response_is_recorded_and_undone(pap: PAP) -> None:
    pap.execute(
        "admin",
        cmds(
            obligation(
                "bad",
                [
                    {"op": "create_object", "name": "x-{target}", "parents": ["{target}"]},
                    {"op": "create_object", "name": "y-{target}", "parents": ["cart"]},
                ],
                operations=["create_object_attribute"],
            )
        ),
    )
    pap.execute(
        "admin", cmds({"op": "create_object_attribute", "name": "orders", "parents": ["services"]})
    )
    assert pap.graph.find("orders") is not None  # the triggering change stands
    assert pap.graph.find("x-orders") is None  # the response's first half was undone
    assert "create_object" in (pap.epp.history[-1].error or "")


def test_obligations_feeding_each_other_are_bounded(pap: PAP) -> None:
    pap.execute(
        "admin",
        cmds(
            obligation(
                "loop",
                [
                    {
                        "op": "associate",
                        "userAttribute": "workloads",
                        "target": "{target}",
                        "rights": ["GET"],
                    }
                ],
                operations=["associate"],
            )
        ),
    )
    pap.execute(
        "admin",
        cmds(
            {
                "op": "associate",
                "userAttribute": "workloads",
                "target": "services",
                "rights": ["GET"],
            }
        ),
    )
    assert (pap.epp.history[-1].error or "").startswith("stopped after 1000 events")
