"""StreamState driven like Envoy drives it: start-up order, ACKs, versions, reconnects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from xds_fakes import C, E, FakeEnvoy, L, R, handshake, mesh, names, snapshot, versions

from gossamer.xds.serializer import content_version

MODES = pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])


@MODES
def test_startup_order_cds_eds_lds_rds(delta: bool) -> None:
    snap = mesh(2)
    env = FakeEnvoy(delta=delta)
    assert env.request(C, snap=snap).kind == "initial"
    assert env.request(L, snap=snap).kind == "initial"

    cds = env.push(snap)
    assert cds is not None and cds.type is C
    assert names(cds) == ["c1", "c2"]
    # Listeners wait for the clusters to be ACKed.
    assert env.push(snap) is None
    assert not env.state.in_sync(snap)

    # Endpoints go out while CDS is un-ACKed: Envoy needs them to finish warming.
    env.request(E, ["c1", "c2"])
    eds = env.push(snap)
    assert eds is not None and eds.type is E and names(eds) == ["c1", "c2"]
    assert env.push(snap) is None

    assert env.ack(cds).kind == "ack"
    lds = env.push(snap)
    assert lds is not None and lds.type is L and names(lds) == ["l1", "l2"]

    env.ack(eds)
    # Route names a warming listener subscribes to go out before the listener is ACKed.
    env.request(R, ["r1", "r2"])
    rds = env.push(snap)
    assert rds is not None and rds.type is R and names(rds) == ["r1", "r2"]
    assert env.push(snap) is None
    assert not env.state.in_sync(snap)

    env.ack(lds)
    assert not env.state.in_sync(snap)
    env.ack(rds)
    assert env.push(snap) is None
    assert env.state.in_sync(snap)
    assert all(out.removed == () for out in (cds, eds, lds, rds))


@MODES
def test_ack_bookkeeping(delta: bool) -> None:
    snap = mesh(2)
    env = FakeEnvoy(delta=delta)
    env.request(C, snap=snap)
    cds = env.push(snap)
    assert cds is not None
    ts = env.state.types[C]
    assert ts.sent_version == cds.version
    assert ts.acked_version == ""
    assert ts.known == {}
    assert ts.inflight is not None and ts.inflight.out.nonce == cds.nonce
    assert ts.last_nonce == cds.nonce and cds.nonce != ""
    assert ts.responses == 1

    outcome = env.ack(cds)
    assert outcome.kind == "ack" and outcome.acked == cds
    assert ts.acked_version == ts.sent_version == cds.version
    assert ts.known == versions(cds)
    assert ts.inflight is None
    assert ts.nack is None


@MODES
def test_nonces_are_unique_per_stream(delta: bool) -> None:
    snap = mesh(3)
    env = FakeEnvoy(delta=delta)
    env.request(C, snap=snap)
    env.request(L, snap=snap)
    env.request(E, ["c1", "c2", "c3"])
    env.request(R, ["r1", "r2", "r3"])
    sent = env.push_all(snap)
    assert [o.type for o in sent] == [C, E, L, R]
    assert len({o.nonce for o in sent}) == 4


def test_versions_are_content_hashes() -> None:
    """Same content -> same versions, on two streams (a restarted control plane)."""
    a, b = FakeEnvoy(delta=False), FakeEnvoy(delta=False)
    handshake(a, mesh(2))
    handshake(b, mesh(2))  # built from fresh protos by a fresh Serializer
    for t in (C, E, L, R):
        assert a.state.types[t].known == b.state.types[t].known
        assert a.state.types[t].acked_version == b.state.types[t].acked_version != ""
    # The version of a full response is the snapshot's version of that type.
    snap = mesh(2)
    assert a.state.types[C].acked_version == snap.version(C)
    assert a.state.types[L].acked_version == snap.version(L)
    assert snap.version(C) == content_version((n, v.version) for n, v in snap.of(C).items())
    # ... and a resource's version depends on its content only.
    assert mesh(2).of(C)["c1"].version == snap.of(C)["c1"].version
    assert mesh(2, rev=2).of(C)["c1"].version != snap.of(C)["c1"].version


def test_sotw_reconnect_with_current_versions_resends_nothing() -> None:
    snap = mesh(2)
    before = FakeEnvoy(delta=False)
    handshake(before, snap)

    after = FakeEnvoy(delta=False)  # a new stream, or a restarted control plane
    for t in (C, L, E, R):
        outcome = after.request(
            t,
            before.names[t],
            snap=mesh(2),
            version=before.accepted[t],
            nonce="",
        )
        assert outcome.kind == "initial"
    assert after.push(snap) is None
    assert after.state.in_sync(snap)
    for t in (C, E, L, R):
        assert after.state.types[t].acked_version == before.accepted[t]


def test_sotw_reconnect_with_old_versions_resends_what_changed() -> None:
    old = mesh(2)
    before = FakeEnvoy(delta=False)
    handshake(before, old)

    new = snapshot({"c1": 1, "c2": 2}, {"c1": 1, "c2": 1}, {"l1": 1, "l2": 1}, {"r1": 1, "r2": 1})
    after = FakeEnvoy(delta=False)
    for t in (C, L, E, R):
        after.request(t, before.names[t], snap=new, version=before.accepted[t], nonce="")
    sent = after.push_all(new)
    # Clusters changed: the full set again; everything else was recognised.
    assert [o.type for o in sent] == [C]
    assert names(sent[0]) == ["c1", "c2"]
    assert after.state.in_sync(new)


def test_delta_reconnect_with_initial_versions_resends_nothing() -> None:
    snap = mesh(2)
    before = FakeEnvoy(delta=True)
    handshake(before, snap)

    after = FakeEnvoy(delta=True)
    for t in (C, L, E, R):
        known = before.state.types[t].known
        after.request(t, before.names[t], snap=snap, initial=dict(known), nonce="")
    assert after.push(snap) is None
    assert after.state.in_sync(snap)


def test_delta_reconnect_sends_only_differences() -> None:
    snap = mesh(2)
    before = FakeEnvoy(delta=True)
    handshake(before, snap)
    initial = {t: dict(before.state.types[t].known) for t in (C, E, L, R)}
    initial[C]["c1"] = "stale-version"
    initial[C]["c9"] = "gone-since"
    del initial[E]["c2"]

    after = FakeEnvoy(delta=True)
    for t in (C, L, E, R):
        after.request(t, before.names[t], snap=snap, initial=initial[t], nonce="")
    cds = after.push(snap)
    assert cds is not None and cds.type is C
    assert names(cds) == ["c1"] and cds.removed == ()
    eds = after.push(snap)
    assert eds is not None and eds.type is E and names(eds) == ["c1", "c2"]
    after.ack(cds)
    after.ack(eds)
    gone = after.push(snap)  # the removal comes once nothing else is moving
    assert gone is not None and gone.type is C
    assert gone.resources == () and gone.removed == ("c9",)
    after.ack(gone)
    assert after.push(snap) is None
    assert after.state.in_sync(snap)


@MODES
def test_cluster_update_resends_its_unchanged_endpoints(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(2))
    new = snapshot({"c1": 2, "c2": 1}, None, {"l1": 1, "l2": 1}, {"r1": 1, "r2": 1})
    assert new.of(E) == mesh(2).of(E)  # endpoints unchanged

    cds = env.push(new)
    assert cds is not None and cds.type is C
    assert names(cds) == (["c1"] if delta else ["c1", "c2"])
    eds = env.push(new)  # before the CDS ACK, as Envoy warms c1 until it gets them
    assert eds is not None and eds.type is E
    assert names(eds) == ["c1"]
    # the endpoints Envoy already holds are in flight again: not in sync until ACKed
    assert not env.state.type_in_sync(E, new)
    env.ack(cds)
    env.ack(eds)
    assert env.state.type_in_sync(E, new)
    assert env.push(new) is None
    assert env.state.in_sync(new)
    assert env.state.types[E].force == set()


@MODES
def test_new_cluster_does_not_force_other_endpoints(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(1))
    new = snapshot({"c1": 1, "c2": 1}, None, {"l1": 1}, {"r1": 1})
    cds = env.push(new)
    assert cds is not None and cds.type is C
    # Envoy asks for the new cluster's endpoints; c1's are not sent again.
    assert env.push(new) is None
    env.request(E, ["c1", "c2"], nonce=env.nonces[E])
    eds = env.push(new)
    assert eds is not None and names(eds) == ["c2"]
    env.ack(cds)
    env.ack(eds)
    assert env.state.in_sync(new)


@MODES
def test_route_update_waits_for_listener_ack(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(1))
    new = snapshot({"c1": 1}, None, {"l1": 2}, {"r1": 2})
    lds = env.push(new)
    assert lds is not None and lds.type is L
    assert env.push(new) is None  # r1 is known: it waits for the listener
    env.ack(lds)
    rds = env.push(new)
    assert rds is not None and rds.type is R and names(rds) == ["r1"]
    env.ack(rds)
    assert env.state.in_sync(new)


@MODES
def test_route_update_waits_for_cluster_ack(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(1))
    new = snapshot({"c1": 2}, None, {"l1": 1}, {"r1": 2})
    cds = env.push(new)
    assert cds is not None and cds.type is C
    eds = env.push(new)
    assert eds is not None and eds.type is E
    assert env.push(new) is None  # the route waits until the cluster is ACKed
    env.ack(cds)
    rds = env.push(new)
    assert rds is not None and rds.type is R
    env.ack(eds)
    env.ack(rds)
    assert env.state.in_sync(new)


@MODES
def test_new_route_of_warming_listener_goes_before_listener_ack(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(1))
    new = snapshot({"c1": 1, "c2": 1}, None, {"l1": 2, "l2": 1}, {"r1": 2, "r2": 1})
    cds = env.push(new)
    assert cds is not None
    env.request(E, ["c1", "c2"], nonce=env.nonces[E])
    eds = env.push(new)
    assert eds is not None
    env.ack(cds)
    env.ack(eds)
    lds = env.push(new)
    assert lds is not None and lds.type is L and names(lds) == ["l1", "l2"]
    # The warming l2 subscribes r2, which goes out before the listeners are ACKed.
    env.request(R, ["r1", "r2"], nonce=env.nonces[R])
    rds = env.push(new)
    assert rds is not None and rds.type is R and "r2" in names(rds)
    env.ack(rds)
    env.ack(lds)
    env.push_all(new)
    assert env.state.in_sync(new)


@MODES
def test_in_sync(delta: bool) -> None:
    snap = mesh(1)
    env = FakeEnvoy(delta=delta)
    assert env.state.in_sync(snap)  # nothing requested yet
    handshake(env, snap)
    assert env.state.in_sync(snap)
    new = mesh(1, rev=2)
    assert not env.state.in_sync(new)
    env.push_all(new)
    assert env.state.in_sync(new)
    assert not env.state.in_sync(snap)


@MODES
def test_an_empty_wildcard_type_is_answered_once(delta: bool) -> None:
    """A gateway with no Routes has a listener and no clusters: Envoy waits for a first CDS
    answer (15 s) unless an empty one is sent; after its ACK nothing more is sent."""
    snap = snapshot({}, {}, {"l1": 1})
    env = FakeEnvoy(delta=delta)
    env.request(C, snap=snap)
    env.request(L, snap=snap)
    cds = env.push(snap)
    assert cds is not None and cds.type is C and cds.resources == () and cds.removed == ()
    assert env.push(snap) is None  # listeners wait for that (empty) answer to be ACKed
    assert not env.state.in_sync(snap)
    env.ack(cds)
    lds = env.push(snap)
    assert lds is not None and lds.type is L and names(lds) == ["l1"]
    env.ack(lds)
    assert env.push(snap) is None
    assert env.state.in_sync(snap)


def test_a_sotw_reconnect_holding_the_empty_set_is_sent_nothing() -> None:
    snap = snapshot({}, {}, {"l1": 1})
    first = FakeEnvoy(delta=False)
    handshake(first, snap)
    again = FakeEnvoy(delta=False)
    again.request(C, snap=snap, version=first.accepted[C])
    again.request(L, snap=snap, version=first.accepted[L])
    assert again.push(snap) is None
    assert again.state.in_sync(snap)


class _Listed(list[str]):
    """A request's names that count how often they are walked."""

    walked = 0

    def __iter__(self) -> Iterator[str]:
        _Listed.walked += 1
        return super().__iter__()


def test_a_sotw_request_repeating_its_names_is_not_walked() -> None:
    """Envoy lists every name in every SotW request (10,000 in a gateway's endpoint ACK at
    10k services): the same list as the last one is recognised without building a set."""
    snap = mesh(2)
    env = FakeEnvoy(delta=False)
    handshake(env, snap)
    ts = env.state.types[E]
    subscribed, version = ts.subscribed, ts.sub_version
    _Listed.walked = 0

    def ask(names: list[str]) -> None:
        env.state.on_request(E, nonce="", now=env.now, names=names, snapshot=snap)

    ask(_Listed(sorted(snap.of(E))))
    assert _Listed.walked == 0
    assert ts.subscribed is subscribed and ts.sub_version == version
    ask(_Listed(["c1"]))  # another list: a new subscription
    assert ts.subscribed == {"c1"} and ts.sub_version == version + 1
    ask(_Listed(sorted(snap.of(E))))
    assert ts.subscribed == set(snap.of(E)) and ts.sub_version == version + 2
    assert names(env.push(snap)) == ["c2"]  # (dropped meanwhile: sent again)
