"""Compiled access lists follow the engine incrementally (``controlplane.enforcement``; here
beside the policies it shares with test_rbac.py): one
edge changed through the engine marks the plane dirty and changes the lists of the services
it reaches only; their sidecars alone are rebuilt; a service whose lists stayed equal keeps
its object (so its route table is not rebuilt or republished)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from rbac_policies import CRON, POLICY, REVIEWS, policies, shop_with

from gossamer.authz.engine import AuthzEngine
from gossamer.controlplane.enforcement import (
    Enforcement,
    check_prefix_names,
    enforced_services,
    with_access_change,
)
from gossamer.controlplane.incremental import EndpointChange
from gossamer.model.access_commands import parse_commands
from gossamer.model.access_policy import AccessCommand

pytestmark = pytest.mark.asyncio

RATINGS = ("default", "ratings")
ADMIN_GRANTS = """
  - {userAttribute: "gossamer:admins", target: apis, rights: ["*"]}
  - {userAttribute: "gossamer:admins", target: batch, rights: ["*"]}
"""


class ListJournal:
    def __init__(self) -> None:
        self.entries: list[AccessCommand] = []

    async def append(self, entries: Sequence[AccessCommand]) -> int:
        self.entries.extend(entries)
        return len(self.entries)


async def _engine() -> AuthzEngine:
    text = POLICY.replace("  associations:\n", "  associations:\n" + ADMIN_GRANTS.lstrip("\n"))
    # first start writes the bootstrap administrator, whom the policy refers to
    engine = await AuthzEngine.open(ListJournal(), [], 0)
    (policy,) = policies(text)
    engine.changed({policy.key: policy}, 1)
    await engine.rebuild()
    assert engine.load_error is None
    return engine


async def test_one_edge_recompiles_only_the_service_it_reaches() -> None:
    engine = await _engine()
    marks: list[int] = []
    enforcement = Enforcement(lambda: marks.append(1))
    enforcement.attach(engine)
    model = shop_with("enforce")
    everyone = {REVIEWS, RATINGS, ("default", "web"), ("default", "db")}
    assert set(enforced_services(model)) == everyone
    before = await enforcement.state(model)
    assert await enforcement.state(model) is before  # nothing changed: nothing compiled
    recompiled = enforcement.recompiled
    assert not before.of(RATINGS).decide(CRON, "GET", "/")
    marks.clear()

    await engine.execute(
        "admin",
        parse_commands(
            [{"op": "associate", "userAttribute": "batch", "target": "svc:default/ratings",
              "rights": ["GET"]}]
        ),
    )  # fmt: skip
    assert marks, "a change inside the engine marks the plane dirty"
    after = await enforcement.state(model)
    assert after.of(RATINGS).decide(CRON, "GET", "/")
    assert enforcement.recompiled == recompiled + 1
    for ref in (REVIEWS, ("default", "web"), ("default", "db")):
        assert after.services[ref] is before.services[ref]
    change = with_access_change(EndpointChange(frozenset(), frozenset()), before, after, model)
    assert change.workloads == {w.ref for w in model.workloads_of(RATINGS)}
    assert change.services == frozenset()


async def test_a_rebuilt_graph_keeps_the_objects_of_unchanged_services() -> None:
    engine = await _engine()
    enforcement = Enforcement(lambda: None)
    enforcement.attach(engine)
    model = shop_with("enforce")
    before = await enforcement.state(model)
    # a policy re-applied with a prohibition: the engine rebuilds a new graph
    text = POLICY.replace("  associations:\n", "  associations:\n" + ADMIN_GRANTS.lstrip("\n"))
    text += """  - {name: no-cron-orders, subject: batch, rights: [DELETE],
     include: ["svc:default/reviews:/api/orders"]}
"""
    (policy,) = policies(text)
    engine.changed({policy.key: policy}, 2)
    assert engine.rebuild_pending
    after = await enforcement.state(model)  # rebuilds first: a waiting apply sees it
    assert not engine.rebuild_pending
    assert not after.of(REVIEWS).decide(CRON, "DELETE", "/api/orders/1")
    assert after.of(REVIEWS).decide(CRON, "POST", "/api/orders/1")
    assert after.services[RATINGS] is before.services[RATINGS]
    assert after.services[REVIEWS] is not before.services[REVIEWS]


async def test_only_enforced_services_are_compiled() -> None:
    engine = await _engine()
    enforcement = Enforcement(lambda: None)
    enforcement.attach(engine)
    state = await enforcement.state(shop_with("off", service_mode="audit"))
    assert set(state.services) == {REVIEWS}


async def test_a_prefix_envoy_cannot_match_is_refused_naming_the_field() -> None:
    bad = POLICY.replace('"svc:default/reviews:/admin": [', '"svc:default/reviews:/admin/": [')
    model = shop_with("enforce").with_changes(policies(bad))
    errors = await check_prefix_names(model)
    assert [e.path for e in errors] == ["spec.objectAttributes.svc:default/reviews:/admin/"]
    assert "trailing '/'" in errors[0].message
    for prefix in ("/a//b", "/a/../b", "/a%2Fb", "admin", "/a?b", "/a/./b"):
        text = POLICY.replace('"svc:default/reviews:/admin"', f'"svc:default/reviews:{prefix}"')
        found = await check_prefix_names(shop_with("enforce").with_changes(policies(text)))
        assert len(found) == 1, prefix
    assert await check_prefix_names(shop_with("enforce").with_changes(policies())) == []
