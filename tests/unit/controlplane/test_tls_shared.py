"""mTLS readiness across replicas: a strict sidecar streaming from one replica refuses
plaintext only once every other replica confirmed that the callers streaming from it hold
its endpoints marked (alone, its replica saw no caller and enforced at once while the
callers' replica, which had never seen it ready, kept them on plaintext: every call failed,
found by ``bench/chaos.py``)."""

from __future__ import annotations

from tests.unit.controlplane.test_tls_readiness import ALL, EDGE, REVIEWS, REVIEWS_2, WEB, World

from gossamer.controlplane.tls_shared import SharedTls, TlsFacts
from gossamer.types import ProxyIdentity

R1, R2 = ("default", "reviews-1"), ("default", "reviews-2")


class Replica:
    """One replica's view: the proxies streaming from it, its agents' holding reports."""

    def __init__(self, streams: tuple[ProxyIdentity, ...], holding: tuple[ProxyIdentity, ...]):
        self.w = World("strict", capable=streams)
        for p in {WEB, REVIEWS, REVIEWS_2, EDGE} - set(streams):
            self.w.cache.detach(p)
        self.w.tls.set_holding(frozenset(p.node_id for p in holding))
        self.shared = SharedTls(
            self.w.tls, lambda: self.w.model, lambda: self.w.publisher.published_tls, lambda: None
        )

    def round(self, *acked: ProxyIdentity) -> None:
        """Publish, the proxies ACK, readiness is judged again."""
        self.w.publish()
        self.w.acks.ack(*acked)
        self.w.refresh()


def exchange(a: Replica, b: Replica) -> None:
    doc_a, doc_b = a.shared.document(), b.shared.document()
    assert doc_a is not None and doc_b is not None
    a.shared.take({"b": doc_b})
    b.shared.take({"a": doc_a})


def test_a_strict_sidecar_waits_for_the_callers_on_another_replica() -> None:
    a = Replica(streams=(REVIEWS, REVIEWS_2), holding=(REVIEWS, REVIEWS_2))
    b = Replica(streams=(WEB, EDGE), holding=(WEB, EDGE))
    a.round(REVIEWS, REVIEWS_2)
    b.round(WEB, EDGE)
    assert a.w.tls.state().ready == {R1, R2}
    exchange(a, b)
    # B learnt that reviews is ready and marks it for its callers; A does not enforce yet:
    # B has not confirmed that its callers hold reviews' endpoints marked
    b.round()
    assert b.w.marked(WEB, ALL) == {"reviews-1", "reviews-2"}
    a.round(REVIEWS, REVIEWS_2)
    a.round(REVIEWS, REVIEWS_2)
    assert a.w.tls.state().enforced == frozenset() and a.w.chains(REVIEWS) == 2

    b.round(WEB, EDGE)  # the callers ACKed the mark
    exchange(a, b)
    a.round(REVIEWS, REVIEWS_2)
    assert a.w.tls.state().enforced == {R1, R2}
    a.w.publish()
    assert a.w.chains(REVIEWS) == 1  # TLS only, now that every caller sends it


def test_alone_the_sidecars_replica_enforces_before_the_callers_are_marked() -> None:
    """(What happened before the replicas shared: the test above fails this way.)"""
    a = Replica(streams=(REVIEWS, REVIEWS_2), holding=(REVIEWS, REVIEWS_2))
    a.round(REVIEWS, REVIEWS_2)
    a.round(REVIEWS, REVIEWS_2)
    assert a.w.tls.state().enforced == {R1, R2}


def test_secrets_reported_to_another_replica_count() -> None:
    """The agent's heartbeats reach B, its sidecar streams from A: A judges it ready."""
    a = Replica(streams=(REVIEWS,), holding=())
    b = Replica(streams=(WEB,), holding=(REVIEWS,))
    a.round(REVIEWS)
    a.round(REVIEWS)
    assert a.w.tls.state().ready == frozenset()
    exchange(a, b)
    assert a.w.tls.state().ready == {R1}


def test_a_replica_confirms_only_what_it_knows_is_ready() -> None:
    """A replica with no caller of reviews confirms it once it knows it is ready (nobody
    there holds it unmarked); one that has not learnt it is ready holds it back."""
    a = Replica(streams=(REVIEWS, REVIEWS_2), holding=(REVIEWS, REVIEWS_2))
    idle = Replica(streams=(), holding=())
    a.round(REVIEWS, REVIEWS_2)
    doc = idle.shared.document()
    assert doc is not None and TlsFacts.from_json(doc, "idle").marked == frozenset()
    exchange(a, idle)
    a.round(REVIEWS, REVIEWS_2)
    assert a.w.tls.state().enforced == frozenset()
    idle.round()  # (it publishes what it learnt)
    exchange(a, idle)
    a.round(REVIEWS, REVIEWS_2)
    assert a.w.tls.state().enforced == {R1, R2}


def test_a_sidecar_whose_replica_died_stays_marked_for_its_callers() -> None:
    """Reviews' replica dies (its document goes with its lease) and its sidecar has not
    reconnected: its Envoy still refuses plaintext, so web's replica keeps it marked; once
    it streams from a replica that finds its Envoy without its secrets, the mark goes."""
    a = Replica(streams=(REVIEWS, REVIEWS_2), holding=(REVIEWS, REVIEWS_2))
    b = Replica(streams=(WEB, EDGE), holding=(WEB, EDGE))
    a.round(REVIEWS, REVIEWS_2)
    exchange(a, b)
    b.round(WEB, EDGE)
    assert b.w.marked(WEB, ALL) == {"reviews-1", "reviews-2"}
    b.shared.take({})  # A is gone, reviews streams from no replica
    b.round(WEB, EDGE)
    assert b.w.marked(WEB, ALL) == {"reviews-1", "reviews-2"}
    # reviews-1 reconnects to C, whose agent's report says its Envoy holds nothing
    c = Replica(streams=(REVIEWS,), holding=())
    c.round(REVIEWS)
    doc = c.shared.document()
    assert doc is not None
    b.shared.take({"c": doc})
    b.round(WEB, EDGE)
    assert b.w.marked(WEB, ALL) == {"reviews-2"}


def test_a_lapse_in_the_report_of_secrets_keeps_a_ready_sidecar_ready() -> None:
    """The agent reported reviews' secrets to a replica that died; its next heartbeat (every
    15 s) reaches another only after that replica's document expired (10 s). Meanwhile
    reviews stays ready (it still takes TLS); alone, a control plane would drop it."""
    a = Replica(streams=(REVIEWS, REVIEWS_2), holding=(REVIEWS, REVIEWS_2))
    a.round(REVIEWS, REVIEWS_2)
    a.w.tls.set_holding(frozenset())
    a.round(REVIEWS, REVIEWS_2)
    assert a.w.tls.state().ready == {R1, R2}
    alone = World("strict")
    alone.publish()
    alone.acks.ack(REVIEWS, REVIEWS_2, WEB, EDGE)
    alone.refresh()
    assert {R1, R2} <= alone.tls.state().ready
    alone.tls.set_holding(frozenset())
    alone.refresh()
    assert alone.tls.state().ready == frozenset()


def test_after_every_replica_restarted_the_callers_keep_the_marks() -> None:
    """What was kept in etcd seeds a starting replica: web reconnects before reviews, and
    is still given reviews marked (reviews' Envoy may still refuse plaintext)."""
    a = Replica(streams=(REVIEWS, REVIEWS_2), holding=(REVIEWS, REVIEWS_2))
    a.round(REVIEWS, REVIEWS_2)
    kept = a.shared.kept()
    assert kept is not None and TlsFacts.from_json(kept, "kept").ready == {R1, R2}
    fresh = Replica(streams=(WEB, EDGE), holding=(WEB, EDGE))
    fresh.shared.take_kept(kept)
    fresh.shared.take({})  # (no other replica has spoken yet)
    fresh.round(WEB, EDGE)
    assert fresh.w.marked(WEB, ALL) == {"reviews-1", "reviews-2"}
    unseeded = Replica(streams=(WEB, EDGE), holding=(WEB, EDGE))
    unseeded.round(WEB, EDGE)
    assert unseeded.w.marked(WEB, ALL) == set()


def test_the_document_round_trips_and_a_malformed_one_is_ignored() -> None:
    facts = TlsFacts(
        frozenset({"sidecar~default~web-1"}), frozenset({R1}), frozenset({R2}), frozenset({R1})
    )
    assert TlsFacts.from_json(facts.to_json(), "replica x") == facts
    for raw in (b"not json", b'{"ready": ["no-slash"]}', b'{"ready": 7}', b"[]"):
        assert TlsFacts.from_json(raw, "replica x") == TlsFacts()
    both = TlsFacts.combined([facts, TlsFacts(ready=frozenset({R2}), marked=frozenset({R1}))])
    assert both is not None and both.ready == {R1, R2} and both.marked == frozenset()
    assert TlsFacts.combined([]) is None  # (no other replica: nothing holds enforcement)
