"""Cached decisions after random change sequences equal a from-scratch evaluation.

Each step makes a random change (some of which the graph refuses: those must leave the
graph exactly as it was), then asks a few decisions so the caches are warm when the next
change lands, then compares every (user, target, process) decision with the reference.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.authz.randompolicy import RIGHTS, build_graph, random_policy

from gossamer.authz import reference
from gossamer.authz.acl import AccessLists
from gossamer.authz.decider import Decider
from gossamer.authz.graph import Graph, Kind
from gossamer.authz.prohibitions import Prohibition
from gossamer.authz.snapshot import dump
from gossamer.errors import GossamerError


def random_change(
    g: Graph, rng: random.Random, step: int, warm: Callable[[], None] = lambda: None
) -> None:
    """One random change; ``warm`` runs inside transactions, before they fail, so the caches
    hold views of what the undo removes."""
    names = [g.name(n) for n in g.nodes() if not g.name(n).startswith("PM_ADMIN")]
    pick = rng.choice
    what = rng.randrange(11)
    if what == 0:
        g.assign(pick(names), [pick(names)])
    elif what == 1:
        child = pick(names)
        parents = [g.name(p) for p in g.parents(g.id(child))]
        g.deassign(child, rng.sample(parents, rng.randint(0, len(parents))))
    elif what == 2:
        g.associate(pick(names), pick(names), rng.sample([*RIGHTS, "*"], rng.randint(1, 2)))
    elif what == 3:
        u = pick(names)
        targets = list(g.assoc_out.get(g.id(u), {}))
        if targets:
            g.dissociate(u, g.name(pick(targets)))
    elif what == 4:
        kind = pick(list(Kind))
        g.create_node(f"n{step}", kind, [] if kind == Kind.PC else [pick(names)])
    elif what == 5:
        g.delete_node(pick(names))
    elif what == 6:
        containers = tuple((g.id(c), rng.random() < 0.4) for c in rng.sample(names, 2))
        subject = g.id(pick(names))
        if rng.random() < 0.3:
            g.add_prohibition(
                Prohibition(
                    f"x{step}",
                    g.rights.mask(["write"]),
                    containers,
                    rng.random() < 0.5,
                    process="p1",
                )
            )
        else:
            g.add_prohibition(
                Prohibition(
                    f"x{step}",
                    g.rights.mask([pick(RIGHTS)]),
                    containers,
                    rng.random() < 0.5,
                    subject=subject,
                )
            )
    elif what == 7:
        existing = [p.name for p in g.prohibitions.all()]
        if existing:
            g.remove_prohibition(pick(existing))
    elif what == 8:
        with g.transaction():  # a transaction that fails half-way undoes its first half
            g.assign(pick(names), [pick(names)])
            g.associate(pick(names), pick(names), ["read"])
            g.delete_node(pick(names))
    elif what == 9:
        with g.transaction():  # new nodes (ids reused after the undo), then a refusal
            for i in range(rng.randint(1, 3)):
                kind = pick(list(Kind))
                made = [g.name(n) for n in g.nodes() if not g.name(n).startswith("PM_ADMIN")]
                g.create_node(f"t{step}-{i}", kind, [] if kind == Kind.PC else [pick(made)])
                if rng.random() < 0.5:
                    g.assign(pick(made), [pick(made)])
                if rng.random() < 0.5:
                    g.associate(pick(made), pick(made), ["read"])
                warm()
            if rng.random() < 0.8:
                g.create_node(f"t{step}-0", Kind.PC)  # a duplicate name: refused
    else:
        g.set_resource_rights(rng.choice([RIGHTS, (*RIGHTS, "extra")]))


def compare_all(g: Graph, d: Decider) -> None:
    users: list[int | tuple[int, ...]] = [n for n in g.nodes() if g.kind(n) == Kind.U]
    uas = [n for n in g.nodes() if g.kind(n) == Kind.UA]
    users.append(tuple(uas[:2]))  # an end user known by its attributes
    for u in users:
        for t in g.nodes():
            for process in (None, "p1"):
                assert d.privileges(u, t, process) == reference.privileges(g, u, t, process), (
                    u,
                    g.name(t),
                    process,
                )


def check_random_changes(seed: int, scan: bool) -> None:
    rng = random.Random(seed)
    g = build_graph(random_policy(rng))
    d = Decider(g, max_entries=rng.choice([4_000_000, 40]))  # a tiny bound empties often
    if scan:  # invalidate by scanning the views instead of walking the graph
        d.walk_factor = d.walk_min = 0
    compare_all(g, d)
    refused = 0

    def warm(count: int = 5) -> None:
        nodes = list(g.nodes())
        users = [n for n in nodes if g.kind(n) == Kind.U]
        uas = [n for n in nodes if g.kind(n) == Kind.UA]
        for _ in range(count):
            target = nodes[-1] if rng.random() < 0.3 else rng.choice(nodes)  # often the newest
            if users:
                d.privileges(rng.choice(users), target, rng.choice([None, "p1"]))
            if uas:
                d.privileges(tuple(rng.sample(uas, min(2, len(uas)))), target)

    for step in range(40):
        before = dump(g)
        try:
            random_change(g, rng, step, warm)
        except GossamerError:
            refused += 1
            assert dump(g) == before, "a refused change altered the graph"
            if rng.random() < 0.5:  # a new node takes the id an undo may have freed
                parent = rng.choice([n for n in g.nodes() if g.kind(n) == Kind.OA])
                g.create_node(f"r{step}", Kind.OA, [g.name(parent)])
        warm()  # warm some entries before the next change
        if step % 5 == 4:
            compare_all(g, d)
    compare_all(g, d)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), scan=st.booleans())
def test_cached_decisions_follow_random_changes(seed: int, scan: bool) -> None:
    check_random_changes(seed, scan)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), scan=st.booleans())
def test_cached_decisions_follow_random_changes_long(seed: int, scan: bool) -> None:
    check_random_changes(seed, scan)


def test_comparison_catches_a_stale_cache() -> None:
    """If the decider missed a change, compare_all would say so."""
    g = build_graph(random_policy(random.Random(3)))
    d = Decider(g)
    compare_all(g, d)
    g.unsubscribe(d)  # simulate a cache that stops listening
    u = next(n for n in g.nodes() if g.kind(n) == Kind.U)
    for ua in list(g.nodes(Kind.UA)):
        for t in list(g.assoc_out.get(ua, {})):
            g.dissociate(g.name(ua), g.name(t))
    stale = any(d.privileges(u, t) != reference.privileges(g, u, t) for t in g.nodes())
    assert stale


def compare_lists(
    g: Graph, d: Decider, lists: AccessLists, members: set[int] | None = None
) -> None:
    users = [n for n in g.nodes() if g.kind(n) == Kind.U and (members is None or n in members)]
    lists.refresh()
    for t in g.nodes():
        expected: dict[int, set[int]] = {}
        for u in users:
            bits = d.privileges(u, t)
            while bits:
                low = bits & -bits
                bits ^= low
                expected.setdefault(low, set()).add(u)
        got = {
            r: {u for u in users if lists.users_of(u) & m}
            for r, m in lists.access_list(t).items()
            if m
        }
        assert got == expected, g.name(t)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), patch=st.booleans(), subset=st.booleans())
def test_access_lists_follow_random_changes(seed: int, patch: bool, subset: bool) -> None:
    rng = random.Random(seed)
    g = build_graph(random_policy(rng))
    d = Decider(g)
    members = (
        {n for n in g.nodes() if g.kind(n) == Kind.U and rng.random() < 0.5} if subset else None
    )
    lists = AccessLists(d, members)
    lists.patch_limit = 32 if patch else 0  # re-decide moved users, or recompute lists
    compare_lists(g, d, lists, members)
    for step in range(30):
        with contextlib.suppress(GossamerError):
            random_change(g, rng, step)
        if step % 3 == 2:
            compare_lists(g, d, lists, members)
    compare_lists(g, d, lists, members)
