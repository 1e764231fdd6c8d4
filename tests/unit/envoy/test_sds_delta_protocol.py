"""The delta SDS protocol state without I/O: subscriptions by difference, what the proxy
holds from before, nonces, ACK/NACK, removals, the back-off after a NACK."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import any_pb2

from gossamer.envoy.sds.protocol import RETRY_FIRST, DeltaResponse, DeltaSdsState, SecretResource


def _secret(name: str, version: str) -> SecretResource:
    return SecretResource(name, version, any_pb2.Any(type_url="t", value=version.encode()))


ID1, ID2, TB = _secret("identity", "a1"), _secret("identity", "b2"), _secret("trust-bundle", "c3")


def _ask(
    s: DeltaSdsState,
    subscribe: tuple[str, ...] = (),
    unsubscribe: tuple[str, ...] = (),
    nonce: str = "",
    error: str | None = None,
    initial: Mapping[str, str] | None = None,
    now: float = 0.0,
) -> str:
    return s.on_request(
        subscribe=subscribe,
        unsubscribe=unsubscribe,
        initial_versions=initial or {},
        nonce=nonce,
        error=error,
        now=now,
    ).kind


def _send(s: DeltaSdsState, available: Mapping[str, SecretResource]) -> DeltaResponse:
    planned, _ = s.plan(available, 0)
    assert planned is not None
    return s.sent(*planned)


def test_sends_what_is_subscribed_and_available_then_waits_for_the_ack() -> None:
    s = DeltaSdsState()
    assert s.plan({"identity": ID1}, 0) == (None, None)  # nothing asked yet
    assert _ask(s, ("identity",)) == "initial"
    assert s.plan({}, 0) == (None, None)  # not there yet: nothing (no removal of the unknown)
    r = _send(s, {"identity": ID1, "trust-bundle": TB})
    assert (r.nonce, r.resources, r.removed) == ("1", (ID1,), ())
    assert s.plan({"identity": ID2}, 0) == (None, None)  # one response in flight at a time
    assert _ask(s, nonce=r.nonce) == "ack"
    assert s.held == {"identity": "a1"} and s.acks == 1
    assert s.plan({"identity": ID1}, 0) == (None, None)  # held already
    assert _send(s, {"identity": ID2}).resources == (ID2,)  # rotation


def test_subscriptions_change_by_difference() -> None:
    s = DeltaSdsState()
    _ask(s, ("identity",))
    _ask(s, nonce=_send(s, {"identity": ID1}).nonce)
    assert _ask(s, ("trust-bundle",)) == "subscribe"  # no nonce: only the subscription
    assert s.subscribed == {"identity", "trust-bundle"}
    assert _send(s, {"identity": ID1, "trust-bundle": TB}).resources == (TB,)
    assert _ask(s, unsubscribe=("identity",), nonce="2") == "ack"
    assert s.subscribed == {"trust-bundle"} and s.held == {"trust-bundle": "c3"}
    # subscribing again means "send it", even at the version it had
    _ask(s, ("identity",))
    assert _send(s, {"identity": ID1, "trust-bundle": TB}).resources == (ID1,)


def test_a_reconnecting_proxy_is_not_sent_what_it_holds() -> None:
    s = DeltaSdsState()
    initial = {"identity": "a1", "trust-bundle": "c3", "other": "x"}
    assert _ask(s, ("identity", "trust-bundle"), initial=initial) == "initial"
    assert s.held == {"identity": "a1", "trust-bundle": "c3"}  # only what it subscribes to
    assert s.plan({"identity": ID1, "trust-bundle": TB}, 0) == (None, None)
    r = _send(s, {"identity": ID2, "trust-bundle": TB})
    assert r.resources == (ID2,) and r.next_held == {"identity": "b2", "trust-bundle": "c3"}


def test_a_secret_no_longer_available_is_removed_once_acked() -> None:
    s = DeltaSdsState()
    _ask(s, ("identity", "trust-bundle"))
    _ask(s, nonce=_send(s, {"identity": ID1, "trust-bundle": TB}).nonce)
    r = _send(s, {"trust-bundle": TB})
    assert (r.resources, r.removed) == ((), ("identity",))
    assert r.next_held == {"trust-bundle": "c3"}
    _ask(s, nonce=r.nonce)
    assert s.held == {"trust-bundle": "c3"}
    assert s.plan({"trust-bundle": TB}, 0) == (None, None)  # removed once
    assert _send(s, {"identity": ID2, "trust-bundle": TB}).resources == (ID2,)  # back


def test_a_nack_keeps_what_was_held_and_holds_back_the_same_content() -> None:
    s = DeltaSdsState()
    _ask(s, ("identity",))
    _ask(s, nonce=_send(s, {"identity": ID1}).nonce)
    r2 = _send(s, {"identity": ID2})
    outcome = s.on_request(
        subscribe=(), unsubscribe=(), initial_versions={}, nonce=r2.nonce, error="bad", now=100.0
    )
    assert outcome.kind == "nack" and outcome.answered is r2 and outcome.rejection is not None
    assert outcome.rejection.error == "bad" and s.nacks == 1
    assert s.held == {"identity": "a1"}
    assert s.plan({"identity": ID2}, 100.1) == (None, 100.0 + RETRY_FIRST)
    assert s.plan({"identity": ID2}, 100.0 + RETRY_FIRST)[0] == ((ID2,), ())  # retried
    third = _secret("identity", "d4")
    assert s.plan({"identity": third}, 100.1)[0] == ((third,), ())  # new content at once
    _ask(s, nonce=s.sent((third,), ()).nonce)
    assert s.rejection is None and s.held == {"identity": "d4"}


def test_a_stale_nonce_changes_no_state_but_keeps_its_subscriptions() -> None:
    s = DeltaSdsState()
    _ask(s, ("identity",))
    r1 = _send(s, {"identity": ID1})
    _ask(s, nonce=r1.nonce)
    r2 = _send(s, {"identity": ID2})
    assert _ask(s, ("trust-bundle",), nonce=r1.nonce) == "stale"
    assert s.inflight is r2 and s.held == {"identity": "a1"}
    assert s.subscribed == {"identity", "trust-bundle"}  # a difference is never dropped


def test_a_name_subscribed_again_while_in_flight_is_not_held_by_that_ack() -> None:
    s = DeltaSdsState()
    _ask(s, ("identity",))
    r = _send(s, {"identity": ID1})
    _ask(s, unsubscribe=("identity",))
    _ask(s, ("identity",))
    _ask(s, nonce=r.nonce)
    assert s.held == {}  # Envoy may have dropped it: send it again
    assert _send(s, {"identity": ID1}).resources == (ID1,)
