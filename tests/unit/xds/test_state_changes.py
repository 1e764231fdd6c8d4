"""StreamState after start-up: removals in reverse order, NACKs, stale nonces, subscriptions."""

from __future__ import annotations

import pytest
from xds_fakes import C, E, FakeEnvoy, L, R, handshake, mesh, names, snapshot, versions

from gossamer.xds.state import RETRY_FIRST, RETRY_MAX

MODES = pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])


# -- removals ---------------------------------------------------------------------------------


def test_sotw_removal_keeps_removed_resources_until_their_turn() -> None:
    env = FakeEnvoy(delta=False)
    handshake(env, mesh(2))
    # c1 and l1 change; the chain l2 -> r2 -> c2 goes away.
    new = snapshot({"c1": 2}, {"c1": 1}, {"l1": 2}, {"r1": 1})

    cds = env.push(new)
    assert cds is not None and cds.type is C
    assert names(cds) == ["c1", "c2"]  # c2 still there: l2 and r2 still use it
    assert versions(cds)["c1"] == new.of(C)["c1"].version
    eds = env.push(new)
    assert eds is not None and eds.type is E and names(eds) == ["c1"]
    env.ack(cds)
    env.ack(eds)

    lds = env.push(new)
    assert lds is not None and lds.type is L
    assert names(lds) == ["l1", "l2"]  # the update first, l2 kept
    assert versions(lds)["l1"] == new.of(L)["l1"].version
    env.ack(lds)

    lds2 = env.push(new)
    assert lds2 is not None and lds2.type is L and names(lds2) == ["l1"]
    env.ack(lds2)
    env.request(R, ["r1"])  # Envoy drops the route of the removed listener

    cds2 = env.push(new)
    assert cds2 is not None and cds2.type is C and names(cds2) == ["c1"]
    env.ack(cds2)
    env.request(E, ["c1"])
    assert env.push(new) is None
    assert env.state.in_sync(new)
    assert all(o.removed == () for o in (cds, eds, lds, lds2, cds2))


def test_delta_removal_sends_removed_resources_listeners_then_clusters() -> None:
    env = FakeEnvoy(delta=True)
    handshake(env, mesh(2))
    new = snapshot({"c1": 2}, {"c1": 1}, {"l1": 2}, {"r1": 1})

    sent = []
    for _ in range(10):
        out = env.push(new)
        if out is None:
            break
        sent.append(out)
        env.ack(out)
        if out.type is L and out.removed:
            env.request(R, ["r1"])
        if out.type is C and out.removed:
            env.request(E, ["c1"])
    assert [(o.type, names(o), o.removed) for o in sent] == [
        (C, ["c1"], ()),
        (E, ["c1"], ()),
        (L, ["l1"], ()),
        (L, [], ("l2",)),
        (C, [], ("c2",)),
    ]
    assert env.state.in_sync(new)


@MODES
def test_listener_removal_waits_for_route_updates(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(2))
    new = snapshot({"c1": 1, "c2": 1}, None, {"l1": 1}, {"r1": 2, "r2": 1})

    rds = env.push(new)
    assert rds is not None and rds.type is R and names(rds) == ["r1"]
    assert env.push(new) is None  # l2 stays while a route update is in flight
    env.ack(rds)
    lds = env.push(new)
    assert lds is not None and lds.type is L
    if delta:
        assert lds.removed == ("l2",)
    else:
        assert names(lds) == ["l1"]
    env.ack(lds)
    assert env.push(new) is None
    assert env.state.in_sync(new)


@MODES
def test_cluster_removal_waits_for_listeners_and_routes(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(2))
    new = snapshot({"c1": 1}, None, {"l1": 1}, {"r1": 2})

    order = []
    for _ in range(10):
        out = env.push(new)
        if out is None:
            break
        # Nothing else is planned while a response is un-ACKed here.
        assert env.push(new) is None
        order.append(out.type)
        env.ack(out)
    assert order == [R, L, C]
    assert env.state.in_sync(new)


# -- NACKs ------------------------------------------------------------------------------------


@MODES
def test_nack_is_recorded_and_not_resent_before_retry(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(1))
    before = dict(env.state.types[L].known)
    acked = env.state.types[L].acked_version
    bad = snapshot({"c1": 1}, None, {"l1": 2}, {"r1": 1})

    lds = env.push(bad)
    assert lds is not None and lds.type is L
    outcome = env.nack(lds, "cannot bind 127.0.0.9:10002: address in use")
    assert outcome.kind == "nack" and outcome.acked == lds
    nack = env.state.types[L].nack
    assert nack is not None and outcome.nack == nack
    assert nack.message == "cannot bind 127.0.0.9:10002: address in use"
    assert nack.version == lds.version
    assert nack.attempts == 1
    assert nack.at == env.now
    assert nack.retry_at == env.now + RETRY_FIRST
    # What the proxy has is what it had.
    assert env.state.types[L].known == before
    assert env.state.types[L].acked_version == acked
    assert env.state.types[L].inflight is None

    assert env.state.plan(bad, env.now) == (None, nack.retry_at)
    assert env.state.plan(bad, nack.retry_at - 0.001) == (None, nack.retry_at)
    assert not env.state.in_sync(bad)

    env.now = nack.retry_at
    again = env.push(bad)
    assert again is not None and again.type is L
    assert versions(again) == versions(lds) and again.nonce != lds.nonce
    assert env.push(bad) is None  # sent once

    env.nack(again, "still in use")
    nack2 = env.state.types[L].nack
    assert nack2 is not None and nack2.attempts == 2 and nack2.message == "still in use"
    assert nack2.retry_at == env.now + 2 * RETRY_FIRST


@MODES
def test_new_content_after_nack_is_sent_at_once_and_ack_clears_nack(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(1))
    bad = snapshot({"c1": 1}, None, {"l1": 2}, {"r1": 1})
    lds = env.push(bad)
    assert lds is not None
    env.nack(lds, "bad listener")

    fixed = snapshot({"c1": 1}, None, {"l1": 3}, {"r1": 1})
    lds2 = env.push(fixed)  # same instant: no back-off for different content
    assert lds2 is not None and lds2.type is L
    assert versions(lds2)["l1"] == fixed.of(L)["l1"].version
    assert env.ack(lds2).kind == "ack"
    assert env.state.types[L].nack is None
    assert env.state.in_sync(fixed)


@MODES
def test_nack_back_off_doubles_up_to_the_cap(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(1))
    bad = snapshot({"c1": 1}, None, {"l1": 2}, {"r1": 1})
    delays = []
    for _ in range(9):
        out = env.push(bad)
        assert out is not None and out.type is L
        env.nack(out, "no")
        nack = env.state.types[L].nack
        assert nack is not None
        delays.append(nack.retry_at - env.now)
        env.now = nack.retry_at
    assert RETRY_FIRST * 2**7 > RETRY_MAX  # the cap is reached within the loop
    assert delays == [min(RETRY_MAX, RETRY_FIRST * 2**i) for i in range(9)]
    assert delays[:2] == [RETRY_FIRST, 2 * RETRY_FIRST] and delays[-1] == RETRY_MAX


@MODES
def test_nack_of_one_type_does_not_hold_back_others(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(1))
    bad = snapshot({"c1": 1}, None, {"l1": 2}, {"r1": 1})
    lds = env.push(bad)
    assert lds is not None
    env.nack(lds, "bad listener")

    more = snapshot({"c1": 1}, None, {"l1": 2}, {"r1": 2})
    rds = env.push(more)
    assert rds is not None and rds.type is R and names(rds) == ["r1"]
    env.ack(rds)
    out, wake = env.state.plan(more, env.now)
    assert out is None and wake == env.now + RETRY_FIRST


# -- nonces and subscriptions -----------------------------------------------------------------


@MODES
def test_stale_nonce_is_ignored(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(1))
    old_nonce = env.nonces[C]
    new = snapshot({"c1": 2}, None, {"l1": 1}, {"r1": 1})
    cds = env.push(new)
    assert cds is not None and cds.nonce != old_nonce
    known = dict(env.state.types[C].known)

    for error in (None, "late NACK of an old response"):
        outcome = env.request(C, [], nonce=old_nonce, error=error)
        assert outcome.kind == "stale"
        ts = env.state.types[C]
        assert ts.inflight is not None and ts.inflight.out == cds
        assert ts.known == known and ts.nack is None
    assert env.ack(cds).kind == "ack"
    assert env.state.types[C].known == versions(cds)


@MODES
def test_subscription_changes_send_only_new_names(delta: bool) -> None:
    snap = mesh(3)
    env = FakeEnvoy(delta=delta)
    env.request(C, snap=snap)
    env.request(E, ["c1"])
    first = env.push_all(snap)
    assert [(o.type, names(o)) for o in first] == [(C, ["c1", "c2", "c3"]), (E, ["c1"])]

    assert env.request(E, ["c1", "c2"]).kind == "subscribe"
    eds = env.push(snap)
    assert eds is not None and names(eds) == ["c2"]
    env.ack(eds)
    assert env.push(snap) is None

    env.request(E, ["c2"])  # unsubscribe c1: nothing to send
    assert env.push(snap) is None
    assert "c1" not in env.state.types[E].known
    env.request(E, ["c1", "c2", "c9"])  # c1 again (it was dropped); c9 does not exist
    eds = env.push(snap)
    assert eds is not None and names(eds) == ["c1"]
    env.ack(eds)
    assert env.state.in_sync(snap)


@MODES
def test_route_subscription_sends_only_new_names(delta: bool) -> None:
    snap = mesh(2)
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(1))
    env.push_all(snap)
    env.request(E, ["c1", "c2"])
    env.push_all(snap)
    env.request(R, ["r1", "r2"])
    rds = env.push(snap)
    assert rds is not None and names(rds) == ["r2"]
    env.ack(rds)
    assert env.state.in_sync(snap)


# -- bugs -------------------------------------------------------------------------------------


@MODES
def test_ack_that_unsubscribes_then_resubscribe_resends(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(2))
    new = snapshot({"c1": 1, "c2": 1}, {"c1": 2, "c2": 2}, {"l1": 1, "l2": 1}, {"r1": 1, "r2": 1})
    eds = env.push(new)
    assert eds is not None and names(eds) == ["c1", "c2"]
    env.ack(eds, names=["c1"])  # Envoy dropped c2 (e.g. its cluster went) meanwhile

    env.request(E, ["c1", "c2"])  # c2's cluster is back: Envoy asks for its endpoints
    again = env.push(new)
    assert again is not None and names(again) == ["c2"]


@MODES
def test_new_route_name_does_not_carry_updates_of_known_routes(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(1))
    grow = snapshot({"c1": 1, "c2": 1}, None, {"l1": 1, "l2": 1}, {"r1": 1})
    for out in env.push_all(grow):
        if out.type is C:
            env.request(E, ["c1", "c2"])
    # r1 moves to a new revision while c1 changes: the route must wait for the cluster.
    nxt = snapshot({"c1": 2, "c2": 1}, None, {"l1": 1, "l2": 2}, {"r1": 2, "r2": 1})
    cds = env.push(nxt)
    assert cds is not None and cds.type is C
    eds = env.push(nxt)
    assert eds is not None and eds.type is E
    env.request(R, ["r1", "r2"])  # a warming listener asks for r2
    rds = env.push(nxt)
    assert rds is not None and rds.type is R
    assert names(rds) == ["r2"]  # r1 waits for the cluster ACK
