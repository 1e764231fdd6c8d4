"""The API's NGAC objects and the decision on (user, right, namespace, kind), with a real
engine over a real control plane (registry/api_access.py, docs/ngac.md "The API under NGAC")."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.authz.planes import authz_plane

from gossamer.authz.elements import ADMIN_BASE, ADMIN_PC
from gossamer.authz.graph import Graph, Kind
from gossamer.model.access_commands import parse_commands
from gossamer.registry.api_access import (
    API_OBJECT,
    READERS,
    bootstrap_commands,
    kind_attribute,
    namespace_attribute,
    resource_object,
)
from gossamer.registry.operators import ADMIN_USER, Operator, OperatorTokens

ADMIN = Operator(ADMIN_USER, ADMIN_USER, False)
RIGHTS = ("read", "apply", "delete")


async def allowed(tokens: OperatorTokens, who: Operator, namespace: str, kind: str) -> set[str]:
    out = set()
    for right in RIGHTS:
        d = await tokens.decide(who, right, namespace, kind)
        assert d.allowed == (right in d.holds)
        if d.allowed:
            out.add(right)
    return out


@pytest.mark.asyncio
async def test_the_decision_table(tmp_path: Path) -> None:
    async with authz_plane() as (plane, engine):
        tokens = OperatorTokens(plane, engine)
        await tokens.bootstrap(tmp_path)
        _, ops = await tokens.create(ADMIN, "ops")
        _, dash = await tokens.create(ADMIN, "dash", read_only=True)
        _, ta = await tokens.create(ADMIN, "ta", namespaces=["team-a"])
        _, ap = await tokens.create(ADMIN, "ap", namespaces=["team-a", "team-c"], rights=["apply"])
        who = {t.name: Operator(t.name, t.user, t.read_only) for t in (ops, dash, ta, ap)}
        assert ap.rights == ("apply",) and not ap.read_only and ta.rights == RIGHTS

        every = set(RIGHTS)
        table = [
            # token, namespace, kind, rights held
            ("admin", "team-a", "Service", every),
            ("admin", "default", "Mesh", every),
            ("ops", "team-b", "Route", every),
            ("ops", "default", "AccessPolicy", every),
            ("dash", "team-a", "Service", {"read"}),
            ("dash", "default", "Mesh", {"read"}),
            ("ta", "team-a", "Service", every),
            ("ta", "team-a", "Workload", every),
            ("ta", "team-b", "Service", set()),
            ("ta", "team-a", "Mesh", set()),
            ("ta", "team-a", "AccessPolicy", set()),
            ("ap", "team-a", "Service", {"apply"}),
            ("ap", "team-c", "Gateway", {"apply"}),
            ("ap", "team-b", "Gateway", set()),
        ]
        for name, namespace, kind, rights in table:
            operator = ADMIN if name == "admin" else who[name]
            got = await allowed(tokens, operator, namespace, kind)
            assert got == rights, (name, namespace, kind, got)

        d = await tokens.decide(who["ta"], "apply", "team-a", "Service")
        assert d.target == resource_object("team-a", "Service") == "api:team-a/Service"
        d = await tokens.decide(who["ta"], "apply", "team-b", "Service")
        assert d.target == kind_attribute("Service")  # team-b has no attribute
        assert "no association grants 'apply'" in d.why
        d = await tokens.decide(who["ta"], "apply", "team-a", "Mesh")
        assert d.target == "api:kind/Mesh" and not d.allowed


@pytest.mark.asyncio
async def test_a_namespace_without_attribute_decides_as_its_object_would(tmp_path: Path) -> None:
    async with authz_plane() as (plane, engine):
        tokens = OperatorTokens(plane, engine)
        await tokens.bootstrap(tmp_path)
        _, ta = await tokens.create(ADMIN, "ta", namespaces=["team-a"])
        # a grant on a kind reaches every namespace, a prohibition on it too
        commands = [
            {"op": "create_user_attribute", "name": "route-editors", "parents": ["PM_ADMIN"]},
            {"op": "assign", "child": "token:ta", "parents": ["route-editors"]},
            {
                "op": "associate",
                "userAttribute": "route-editors",
                "target": kind_attribute("Route"),
                "rights": ["read", "apply"],
            },
        ]
        await engine.execute(ADMIN_USER, parse_commands(commands))
        users = [ADMIN, Operator(ta.name, ta.user, False)]
        kinds = ["Service", "Route", "Mesh", "Gateway"]
        before = {(u.user, k): await allowed(tokens, u, "team-q", k) for u in users for k in kinds}
        assert before[("token:ta", "Route")] == {"read", "apply"}
        assert before[("token:ta", "Service")] == set()
        await engine.execute(ADMIN_USER, parse_commands(tokens.access.namespaces(["team-q"])))
        assert engine.graph.find(resource_object("team-q", "Route")) is not None
        after = {(u.user, k): await allowed(tokens, u, "team-q", k) for u in users for k in kinds}
        assert after == before


@pytest.mark.asyncio
async def test_an_administrators_namespace_gets_its_objects_on_first_use(tmp_path: Path) -> None:
    async with authz_plane() as (plane, engine):
        tokens = OperatorTokens(plane, engine)
        await tokens.bootstrap(tmp_path)
        _, t = await tokens.create(ADMIN, "t", read_only=True)
        commands = [
            {"op": "create_object_attribute", "name": "api:ns/lab", "parents": [API_OBJECT]},
            {"op": "create_user_attribute", "name": "lab-team", "parents": ["PM_ADMIN"]},
            {"op": "assign", "child": "token:t", "parents": ["lab-team"]},
            {
                "op": "associate",
                "userAttribute": "lab-team",
                "target": "api:ns/lab",
                "rights": ["apply"],
            },
        ]
        await engine.execute(ADMIN_USER, parse_commands(commands))
        assert engine.graph.find("api:lab/Service") is None
        reader = Operator(t.name, t.user, True)
        d = await tokens.decide(reader, "apply", "lab", "Service")
        assert d.allowed and d.target == "api:lab/Service", d
        assert engine.graph.find("api:lab/Route") is not None
        assert not (await tokens.decide(reader, "apply", "lab", "Mesh")).allowed


def test_readers_of_an_older_graph_are_given_read_beside_get() -> None:
    g = Graph()  # as the first version of operator tokens left it: readers hold GET only
    g.create_node(API_OBJECT, Kind.OA, [ADMIN_BASE])
    g.create_node(READERS, Kind.UA, [ADMIN_PC])
    g.associate(READERS, API_OBJECT, ["GET"])
    commands = bootstrap_commands(g)
    creates = [c["name"] for c in commands if str(c["op"]).startswith("create")]
    assert API_OBJECT not in creates and READERS not in creates
    assert kind_attribute("Service") in creates and kind_attribute("Mesh") in creates
    readers = [c for c in commands if c.get("userAttribute") == READERS]
    assert readers == [
        {
            "op": "associate",
            "userAttribute": READERS,
            "target": API_OBJECT,
            "rights": ["GET", "read"],
        }
    ]
    assert namespace_attribute("x") == "api:ns/x"
