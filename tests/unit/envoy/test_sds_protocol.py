"""The SDS protocol state without I/O: what is sent, when, and what counts as held."""

from __future__ import annotations

from google.protobuf import any_pb2

from gossamer.envoy.sds.protocol import (
    RETRY_FIRST,
    SdsStreamState,
    SecretResource,
    decode_versions,
    encode_versions,
)


def _secret(name: str, version: str) -> SecretResource:
    return SecretResource(name, version, any_pb2.Any(type_url="t", value=version.encode()))


ID1, ID2, TB = _secret("identity", "a1"), _secret("identity", "b2"), _secret("trust-bundle", "c3")


def _ask(
    s: SdsStreamState,
    names: list[str],
    version: str = "",
    nonce: str = "",
    error: str | None = None,
    now: float = 0.0,
) -> str:
    return s.on_request(names=names, version_info=version, nonce=nonce, error=error, now=now).kind


def test_versions_round_trip_and_foreign_text_means_nothing_held() -> None:
    held = {"identity": "a1", "trust-bundle": "c3", "odd,=name": "x"}
    assert decode_versions(encode_versions(held)) == held
    assert encode_versions({"identity": "a1", "trust-bundle": "c3"}) == (
        "identity=a1,trust-bundle=c3"
    )
    assert decode_versions("") == decode_versions("42") == {}


def test_sends_what_is_asked_and_available_then_waits_for_the_ack() -> None:
    s = SdsStreamState()
    assert s.plan({"identity": ID1}, 0) == (None, None)  # nothing asked yet
    assert _ask(s, ["identity"]) == "initial"
    out, _ = s.plan({"identity": ID1, "trust-bundle": TB}, 0)
    assert out == (ID1,)  # only what was asked
    r = s.sent(out)
    assert (r.nonce, r.version_info) == ("1", "identity=a1")
    assert s.plan({"identity": ID2}, 0) == (None, None)  # one response in flight at a time
    assert _ask(s, ["identity"], r.version_info, r.nonce) == "ack"
    assert s.held == {"identity": "a1"} and s.acks == 1
    assert s.plan({"identity": ID1}, 0) == (None, None)  # held already
    out, _ = s.plan({"identity": ID2}, 0)
    assert out == (ID2,)  # rotation
    assert s.sent(out).version_info == "identity=b2"


def test_nothing_is_sent_before_the_secret_exists() -> None:
    s = SdsStreamState()
    _ask(s, ["identity"])
    assert s.plan({}, 0) == (None, None)
    assert s.plan({"trust-bundle": TB}, 0) == (None, None)


def test_a_reconnecting_proxy_is_not_sent_what_it_holds() -> None:
    s = SdsStreamState()
    assert _ask(s, ["identity", "trust-bundle"], "identity=a1,trust-bundle=c3") == "initial"
    assert s.held == {"identity": "a1", "trust-bundle": "c3"}
    assert s.plan({"identity": ID1, "trust-bundle": TB}, 0) == (None, None)
    out, _ = s.plan({"identity": ID2, "trust-bundle": TB}, 0)
    assert out == (ID2,)
    assert s.sent(out).version_info == "identity=b2,trust-bundle=c3"


def test_a_nack_keeps_what_was_held_and_holds_back_the_same_content() -> None:
    s = SdsStreamState()
    _ask(s, ["identity"])
    r1 = s.sent(s.plan({"identity": ID1}, 0)[0] or ())
    _ask(s, ["identity"], r1.version_info, r1.nonce)
    r2 = s.sent(s.plan({"identity": ID2}, 0)[0] or ())
    outcome = s.on_request(
        names=["identity"], version_info=r1.version_info, nonce=r2.nonce, error="bad key", now=100.0
    )
    assert outcome.kind == "nack" and outcome.rejection is not None
    assert outcome.rejection.error == "bad key" and s.nacks == 1
    assert s.held == {"identity": "a1"}
    assert s.plan({"identity": ID2}, 100.1) == (None, 100.0 + RETRY_FIRST)
    out, _ = s.plan({"identity": ID2}, 100.0 + RETRY_FIRST)  # retried after the back-off
    assert out == (ID2,)
    third = _secret("identity", "d4")
    assert s.plan({"identity": third}, 100.1)[0] == (third,)  # new content goes at once
    r3 = s.sent((third,))
    _ask(s, ["identity"], r3.version_info, r3.nonce)
    assert s.rejection is None and s.held == {"identity": "d4"}


def test_a_stale_nonce_changes_nothing() -> None:
    s = SdsStreamState()
    _ask(s, ["identity"])
    r1 = s.sent((ID1,))
    _ask(s, ["identity"], r1.version_info, r1.nonce)
    r2 = s.sent((ID2,))
    assert _ask(s, [], "identity=a1", r1.nonce) == "stale"
    assert s.inflight is r2 and s.subscribed == {"identity"}


def test_unsubscribing_forgets_and_resubscribing_sends_again() -> None:
    s = SdsStreamState()
    _ask(s, ["identity", "trust-bundle"])
    r = s.sent((ID1, TB))
    _ask(s, ["identity", "trust-bundle"], r.version_info, r.nonce)
    assert _ask(s, ["identity"], r.version_info, r.nonce) == "subscribe"
    assert s.held == {"identity": "a1"}
    _ask(s, ["identity", "trust-bundle"], r.version_info, r.nonce)
    assert s.plan({"identity": ID1, "trust-bundle": TB}, 0)[0] == (TB,)
