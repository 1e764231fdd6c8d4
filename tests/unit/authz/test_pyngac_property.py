"""Our decisions equal py-ngac's (a Python port of NIST's Policy Machine) on random graphs.

Only resource rights are compared: py-ngac names its administrative rights differently
(``admin:graph:node:create`` where the reference now says ``create_object`` ...).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from py_ngac.core.impl.memory.pap.memory_pap import MemoryPAP
from py_ngac.core.pap.operation.accessright.access_right_set import AccessRightSet
from py_ngac.core.pap.query.model.context.node_target_context import NodeTargetContext
from py_ngac.core.pap.query.model.context.node_user_context import NodeUserContext
from tests.unit.authz.randompolicy import RIGHTS, Policy, build_graph, random_policy

from gossamer.authz.decider import Decider
from gossamer.authz.graph import Graph
from gossamer.authz.prohibitions import Prohibition


def build_pyngac(pol: Policy) -> tuple[Any, dict[str, int]]:
    pap = MemoryPAP()
    mod = pap.modify()
    mod.operations().set_resource_access_rights(AccessRightSet(list(RIGHTS)))
    g = mod.graph()
    ids: dict[str, int] = {"PM_ADMIN:policy_classes": -3}  # py-ngac's admin node ids
    create = {
        "UA": g.create_user_attribute,
        "OA": g.create_object_attribute,
        "U": g.create_user,
        "O": g.create_object,
    }
    for op in pol.ops:
        if op[0] == "node":
            _, name, kind, parents = op
            if kind == "PC":
                ids[name] = g.create_policy_class(name)
            else:
                ids[name] = create[kind](name, [ids[p] for p in parents])
        elif op[0] == "assoc":
            g.associate(ids[op[1]], ids[op[2]], AccessRightSet(op[3]))
        elif op[0] == "prohib":
            _, name, subject, rights, containers, conj = op
            mod.prohibitions().create_node_prohibition(
                name,
                ids[subject],
                AccessRightSet(rights),
                {ids[c] for c, comp in containers if not comp},
                {ids[c] for c, comp in containers if comp},
                conj,
            )
        elif op[0] == "pproc":
            _, name, user, process, rights, containers, conj = op
            mod.prohibitions().create_process_prohibition(
                name,
                ids[user],
                process,
                AccessRightSet(rights),
                {ids[c] for c, comp in containers if not comp},
                {ids[c] for c, comp in containers if comp},
                conj,
            )
    return pap, ids


def differences(pol: Policy, ours: Graph) -> list[tuple[str, str | None, str]]:
    decider = Decider(ours)
    pap, ids = build_pyngac(pol)
    access = pap.query().access()
    diffs = []
    for user in pol.users:
        for process in (None, *pol.processes):
            for target in pol.targets:
                theirs = access.compute_privileges(
                    NodeUserContext.of(ids[user], process or ""), NodeTargetContext.of(ids[target])
                )
                expected = sorted(r for r in theirs if r in RIGHTS)
                got = decider.privileges(ours.id(user), ours.id(target), process)
                if sorted(r for r in ours.rights.names(got) if r in RIGHTS) != expected:
                    diffs.append((user, process, target))
    return diffs


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_decisions_equal_py_ngac(seed: int) -> None:
    pol = random_policy(random.Random(seed))
    assert differences(pol, build_graph(pol)) == [], pol.ops


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_decisions_equal_py_ngac_long(seed: int) -> None:
    pol = random_policy(random.Random(seed))
    assert differences(pol, build_graph(pol)) == [], pol.ops


def test_the_comparison_sees_a_difference() -> None:
    """Deny ``read`` in our graph only: the comparison must report it."""
    rng = random.Random(7)
    while True:
        pol = random_policy(rng)
        ours = build_graph(pol)
        decider = Decider(ours)
        granted = [
            (u, t)
            for u in pol.users
            for t in pol.targets
            if decider.privileges(ours.id(u), ours.id(t)) & ours.rights.mask(["read"])
        ]
        if granted:
            break
    user, target = granted[0]
    ours.add_prohibition(
        Prohibition(
            "extra",
            ours.rights.mask(["read"]),
            ((ours.id(target), False),),
            True,
            subject=ours.id(user),
        )
    )
    assert (user, None, target) in differences(pol, ours)
