"""``PresenceClaims``: what a replica writes to etcd and what it reads of the others."""

from __future__ import annotations

from gossamer.store.etcd_presence import PresenceClaims


def test_only_changed_judgements_are_written() -> None:
    claims = PresenceClaims("r1")
    claims.publish({"vm-a", "vm-b"})
    assert claims.pending() == ({"vm-a", "vm-b"}, frozenset())
    claims.wrote({"vm-a", "vm-b"}, ())
    claims.publish({"vm-a", "vm-b"})  # a heartbeat changes no judgement: nothing to write
    assert claims.pending() == (frozenset(), frozenset())
    claims.publish({"vm-b", "vm-c"})
    assert claims.pending() == ({"vm-c"}, {"vm-a"})


def test_a_lost_lease_writes_every_claim_again() -> None:
    claims = PresenceClaims("r1")
    claims.publish({"vm-a"})
    claims.wrote({"vm-a"}, ())
    claims.lease_lost()
    assert claims.pending() == ({"vm-a"}, frozenset())


def test_the_others_claims_leave_out_this_replicas() -> None:
    claims = PresenceClaims("r1")
    assert claims.read([("vm-a", "r1"), ("vm-b", "r2"), ("vm-b", "r3")]) is True
    assert claims.elsewhere == {"vm-b"}
    assert claims.read([("vm-b", "r3")]) is False  # same hosts: no news
    assert claims.read([]) is True
    assert claims.elsewhere == frozenset()
