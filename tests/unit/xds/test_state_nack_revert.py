"""StreamState after a NACK when the wanted config goes back to what Envoy last accepted.

Envoy applies the valid resources of a response it rejects (LDS and CDS add or update each
resource on its own), so after a NACK what it runs for the names that response carried is
unknown. Reverting the bad change must therefore send those names again, and the NACK is
cleared by Envoy's ACK of that response: status follows what Envoy confirms it runs.
"""

from __future__ import annotations

import pytest
from xds_fakes import C, E, FakeEnvoy, L, handshake, mesh, names, snapshot, versions

MODES = pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])


def _nacked(env: FakeEnvoy, bad_listeners: dict[str, int]) -> None:
    bad = snapshot({"c1": 1}, None, bad_listeners, {"r1": 1})
    lds = env.push(bad)
    assert lds is not None and lds.type is L
    assert env.nack(lds, "cannot bind: address in use").kind == "nack"
    assert env.state.types[L].nack is not None


@MODES
def test_revert_after_nack_resends_and_the_ack_clears_the_nack(delta: bool) -> None:
    good = mesh(1)
    env = FakeEnvoy(delta=delta)
    handshake(env, good)
    accepted = env.state.types[L].acked_version
    _nacked(env, {"l1": 2})

    # Same instant: the revert is not held back by the NACK's back-off.
    assert not env.state.in_sync(good)
    again = env.push(good)
    assert again is not None and again.type is L
    assert versions(again) == {"l1": good.of(L)["l1"].version}
    assert again.removed == ()
    assert env.push(good) is None
    assert not env.state.in_sync(good)  # not before Envoy confirms it

    assert env.ack(again).kind == "ack"
    ts = env.state.types[L]
    assert ts.nack is None
    assert ts.sent_version == ts.acked_version == accepted
    assert env.state.in_sync(good)
    assert env.push(good) is None


@MODES
def test_revert_of_a_nacked_new_listener_removes_it_again(delta: bool) -> None:
    good = mesh(1)
    env = FakeEnvoy(delta=delta)
    handshake(env, good)
    # l2 is new and bad; Envoy may have kept l1's part of the response and refused l2.
    _nacked(env, {"l1": 1, "l2": 1})

    again = env.push(good)
    assert again is not None and again.type is L
    if delta:
        assert again.removed == ("l2",) and names(again) == []
    else:
        assert names(again) == ["l1"]  # the full set: l2 is not in it
    env.ack(again)
    assert env.state.types[L].nack is None
    assert env.state.types[L].known == {"l1": good.of(L)["l1"].version}
    assert env.state.in_sync(good)


@MODES
def test_unchanged_bad_config_stays_rejected_and_held_back(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(1))
    _nacked(env, {"l1": 2})
    bad = snapshot({"c1": 1}, None, {"l1": 2}, {"r1": 1})
    nack = env.state.types[L].nack
    assert nack is not None
    assert env.state.plan(bad, env.now) == (None, nack.retry_at)
    assert not env.state.in_sync(bad)


@MODES
def test_revert_of_a_nacked_cluster_update_resends_its_endpoints(delta: bool) -> None:
    good = mesh(2)
    env = FakeEnvoy(delta=delta)
    handshake(env, good)
    bad = snapshot({"c1": 2, "c2": 2}, None, {"l1": 1, "l2": 1}, {"r1": 1, "r2": 1})
    cds = env.push(bad)
    assert cds is not None and cds.type is C
    env.nack(cds, "c2 is invalid")  # c1's update may have been applied

    cds2 = env.push(good)
    assert cds2 is not None and cds2.type is C
    assert versions(cds2) == {n: v.version for n, v in good.of(C).items()}
    eds = env.push(good)
    assert eds is not None and eds.type is E and names(eds) == ["c1", "c2"]
    env.ack(cds2)
    env.ack(eds)
    assert env.state.types[C].nack is None
    assert env.state.in_sync(good)


@MODES
def test_nacked_removal_is_held_back_not_looped(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, mesh(2))
    smaller = mesh(1)
    lds = None
    for _ in range(10):
        out = env.push(smaller)
        assert out is not None
        if out.type is L:
            lds = out
            break
        env.ack(out)
    assert lds is not None
    assert lds.removed == ("l2",) if delta else names(lds) == ["l1"]
    env.nack(lds, "cannot remove l2")
    nack = env.state.types[L].nack
    assert nack is not None
    for _ in range(3):  # whatever else goes out, the rejected removal waits for its retry
        assert env.state.plan(smaller, env.now)[1] == nack.retry_at
        out = env.push(smaller)
        if out is None:
            break
        assert out.type is not L
        env.ack(out)
    assert not env.state.in_sync(smaller)

    # the removal is given up: the set Envoy accepted is confirmed, and the NACK cleared
    sent = env.push_all(mesh(2))
    assert [out.type for out in sent].count(L) == 1
    assert env.state.types[L].nack is None
    assert env.state.in_sync(mesh(2))
