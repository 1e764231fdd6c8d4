"""Digests change how much a stream reads, never what it answers.

Two streams are driven in lockstep through the same random story (new snapshots built in
full, diffed against the one before or patched with ``with_resources``; pushes, ACKs,
NACKs, subscription changes, time passing): one gets the snapshots as built (digests and
diffs), the other digest-less copies of them (``Snapshot(resources)``, the path that walks
every resource). Every response, request outcome, ``in_sync`` answer and the per-type
bookkeeping must be the same.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xds_fakes import C, E, FakeEnvoy, L, R, cla, handshake, resources

from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import Outgoing

TYPES = [C, E, L, R]
NAMES = {C: ["c1", "c2", "c3"], E: ["c1", "c2", "c3"], L: ["l1", "l2"], R: ["r1", "r2"]}

SUBSCRIBABLE = ["c1", "c2", "c3", "r1", "r2"]

revs = st.none() | st.integers(1, 3)  # None: the resource is absent
specs = st.fixed_dictionaries(
    {t.short: st.fixed_dictionaries({n: revs for n in NAMES[t]}) for t in TYPES}
)
# (pushes and ACKs weigh more: most of a stream's life is in sync, where digests matter)
ops = st.one_of(
    st.tuples(st.just("snapshot"), specs, st.sampled_from(["diffed", "diffed", "fresh"])),
    st.tuples(st.just("endpoints"), st.sampled_from(NAMES[E]), st.integers(1, 3)),
    st.tuples(st.just("push")),
    st.tuples(st.just("push")),
    st.tuples(st.just("ack"), st.sampled_from(TYPES)),
    st.tuples(st.just("ack"), st.sampled_from(TYPES)),
    st.tuples(st.just("nack"), st.sampled_from(TYPES)),
    st.tuples(st.just("names"), st.sampled_from([E, R]), st.sets(st.sampled_from(SUBSCRIBABLE))),
    st.tuples(st.just("tick"), st.sampled_from([0.1, 1.0, 20.0])),
)


def _build(
    spec: dict[str, dict[str, int | None]], serializer: Serializer, previous: Snapshot | None
) -> Snapshot:
    live = {t: {n: r for n, r in spec[t.short].items() if r is not None} for t in TYPES}
    return Snapshot.build(
        resources(live[C], live[E], live[L], live[R]), serializer, previous=previous
    )


def _plain(snap: Snapshot) -> Snapshot:
    return Snapshot(snap.resources, snap.created)


def _response(out: Outgoing | None) -> Any:
    if out is None:
        return None
    return (
        out.type,
        out.nonce,
        out.version,
        [(r.name, r.version) for r in out.resources],
        out.removed,
    )


def _bookkeeping(env: FakeEnvoy) -> Any:
    return [
        (
            ts.subscribed,
            ts.known,
            ts.doubt,
            ts.force,
            ts.acked_version,
            ts.sent_version,
            ts.last_nonce,
            ts.nack,
            ts.answered,
            ts.last_sent.keys(),
        )
        for ts in env.state.types.values()
    ]


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=specs, story=st.lists(ops, min_size=1, max_size=30))
def test_digests_never_change_an_answer(delta: bool, first: Any, story: list[Any]) -> None:
    serializer = Serializer()
    snap = _build(first, serializer, None)
    fast, slow = FakeEnvoy(delta=delta), FakeEnvoy(delta=delta)
    sent: dict[ResourceType, Outgoing] = {}

    def both(call: Any) -> Any:
        a, b = call(fast, snap), call(slow, _plain(snap))
        assert a == b
        return a

    for t in (C, L):
        both(lambda env, s, t=t: env.request(t, snap=s))
    both(lambda env, s: env.request(E, NAMES[E], snap=s))
    both(lambda env, s: env.request(R, NAMES[R], snap=s))
    for op in story:
        if op[0] == "snapshot":
            snap = _build(op[1], serializer, snap if op[2] == "diffed" else None)
        elif op[0] == "endpoints":
            update = {op[1]: serializer.versioned(E, op[1], cla(op[1], op[2]))}
            snap = snap.with_resources(E, update, 0.0)
        elif op[0] == "push":
            out = both(lambda env, s: _response(env.push(s)))
            if out is not None:
                sent[out[0]] = fast.state.types[out[0]].inflight.out  # type: ignore[union-attr]
        elif op[0] in ("ack", "nack") and op[1] in sent:
            out = sent.pop(op[1])
            if op[0] == "ack":
                both(lambda env, s, out=out: env.ack(out))
            else:
                both(lambda env, s, out=out: env.nack(out, "rejected"))
        elif op[0] == "names":
            asked = sorted(op[2])
            both(lambda env, s, t=op[1], ns=asked: env.request(t, ns, snap=s))
        elif op[0] == "tick":
            fast.now += op[1]
            slow.now += op[1]
        both(lambda env, s: env.state.in_sync(s))
        assert _bookkeeping(fast) == _bookkeeping(slow)


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_a_removed_endpoint_set_stays_in_the_version_until_envoy_drops_it(delta: bool) -> None:
    """Endpoints go away with their cluster, when Envoy stops asking: the response for
    another changed set is versioned by what Envoy then holds, the removed set included,
    not by the snapshot's digest."""
    serializer = Serializer()
    both = {"c1": 1, "c2": 1}
    first = Snapshot.build(resources(both, both, {}, {}), serializer)
    then = Snapshot.build(resources(both, {"c1": 2}, {}, {}), serializer, previous=first)
    fast, slow = FakeEnvoy(delta=delta), FakeEnvoy(delta=delta)
    for env, (a, b) in ((fast, (first, then)), (slow, (_plain(first), _plain(then)))):
        handshake(env, a)
        out = env.push(b)
        assert out is not None and out.type is E and [r.name for r in out.resources] == ["c1"]
        env.ack(out)
        assert env.state.types[E].known.keys() == {"c1", "c2"}
    assert fast.state.types[E].acked_version == slow.state.types[E].acked_version
    assert fast.state.types[E].acked_version != then.version(E)


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_an_updated_clusters_endpoints_go_out_with_other_changed_ones(delta: bool) -> None:
    """Cluster c1 and the endpoints of c2 change in one snapshot: after the cluster update
    Envoy needs c1's (unchanged) endpoints again, with c2's new ones."""
    serializer = Serializer()
    cs = {"c1": 1, "c2": 1, "c3": 1}
    first = Snapshot.build(resources(cs, cs, {}, {}), serializer)
    then = Snapshot.build(
        resources({**cs, "c1": 2}, {**cs, "c2": 2}, {}, {}), serializer, previous=first
    )
    sent = []
    for env, (a, b) in (
        (FakeEnvoy(delta=delta), (first, then)),
        (FakeEnvoy(delta=delta), (_plain(first), _plain(then))),
    ):
        handshake(env, a)
        sent.append([_response(out) for out in env.push_all(b)])
        assert env.state.in_sync(b)
    assert sent[0] == sent[1]
    eds = [out for out in sent[0] if out[0] is E]
    assert [n for n, _ in eds[0][3]] == ["c1", "c2"]
