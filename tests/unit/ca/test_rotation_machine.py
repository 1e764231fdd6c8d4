"""The root rotation's phase machine, without I/O: each phase waits on exactly what it
must (every proxy's ACK of the bundle; certificates from the new root and none current
from the old; certificates a restarted control plane did not record), names what it waits
on, and then moves to the next phase."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gossamer.ca.holders import CONTROL_PLANE, Held
from gossamer.ca.rotation import (
    Observation,
    Phase,
    ProxySecrets,
    RotationMachine,
    RotationState,
)
from gossamer.errors import ConflictError

T0 = datetime(2030, 1, 1, tzinfo=UTC)
OLD, NEW = "aa" * 32, "bb" * 32
BOTH, ONLY_NEW = "bundle-both", "bundle-new"
#: serials issued from each root
FROM_OLD, FROM_NEW = 0x10, 0x20


def _root_of(serial: int) -> str | None:
    return {FROM_OLD: OLD, FROM_NEW: NEW, 0x21: NEW}.get(serial)


def _obs(
    proxies: Mapping[str, ProxySecrets],
    bundle: str = BOTH,
    *,
    now: datetime = T0,
    current: Sequence[Held] = (),
    unrecorded_until: datetime | None = None,
) -> Observation:
    return Observation(now, bundle, proxies, _root_of, current, unrecorded_until)


def _machine(phase: Phase) -> RotationMachine:
    return RotationMachine(RotationState(phase, OLD, NEW, T0, T0))


def test_start_refuses_a_second_rotation_and_begins_trusting() -> None:
    machine = RotationMachine()
    state = machine.start(OLD, NEW, T0)
    assert (state.phase, state.old_root, state.new_root) == (Phase.TRUSTING, OLD, NEW)
    machine.state = state
    with pytest.raises(ConflictError, match=r"already under way.*trusting"):
        machine.start(OLD, NEW, T0)
    done = RotationMachine(RotationState(Phase.DONE, OLD, NEW, T0, T0))
    assert done.start(NEW, "cc" * 32, T0).phase is Phase.TRUSTING  # a finished one is history


def test_trusting_waits_until_every_proxy_acked_the_bundle_with_both_roots() -> None:
    machine = _machine(Phase.TRUSTING)
    proxies = {
        "sidecar~default~web-1": ProxySecrets("10", "bundle-old"),
        "sidecar~default~web-2": ProxySecrets("10", BOTH),
        "sidecar~default~api-1": ProxySecrets(None, None),
    }
    assert machine.observe(_obs(proxies)) is None
    assert machine.progress is not None
    assert machine.progress.waiting == (
        "1 of 3 proxies have the trust bundle with both roots: waiting on "
        "sidecar~default~api-1, sidecar~default~web-1",
    )
    everyone = {n: ProxySecrets("10", BOTH) for n in proxies}
    moved = machine.observe(_obs(everyone, now=T0 + timedelta(seconds=5)))
    assert moved is not None
    assert (moved.phase, moved.since, moved.started) == (
        Phase.ISSUING,
        T0 + timedelta(seconds=5),
        T0,
    )


def test_no_proxies_means_nothing_to_wait_on() -> None:
    assert _machine(Phase.TRUSTING).observe(_obs({})) is not None


def test_trusting_waits_until_every_host_holding_a_certificate_renewed() -> None:
    """A host must get the bundle with both roots (its renewal's answer carries it) before
    the control plane's own certificate comes from the new root, or it can no longer
    verify the API. Its Envoy may not be connected, so it is not among the proxies: a
    gateway whose ADS stream had not opened yet was left stranded that way."""
    machine = _machine(Phase.TRUSTING)
    expires, earlier = T0 + timedelta(hours=1), T0 - timedelta(seconds=1)
    gateway = Held(FROM_OLD, "agent-7", expires, "spiffe://td/ns/x/sa/gw", OLD, earlier)
    # (the control plane's own certificate is never waited on: it renews as the bundle moves)
    own = Held(0x11, CONTROL_PLANE, expires, "spiffe://td/gossamer/control-plane", OLD, earlier)
    assert machine.observe(_obs({}, current=[gateway, own])) is None
    assert machine.progress is not None
    (line,) = machine.progress.waiting
    assert line.startswith("1 certificate issued before the new root was trusted")
    assert "spiffe://td/ns/x/sa/gw (held by agent-7" in line
    renewed = replace(gateway, serial=0x12, issued_at=T0 + timedelta(seconds=3))
    assert machine.observe(_obs({}, current=[renewed, own])) is not None


def test_issuing_waits_for_certificates_from_the_new_root_on_every_proxy() -> None:
    machine = _machine(Phase.ISSUING)
    proxies = {
        "sidecar~default~a": ProxySecrets(f"{FROM_NEW:x}", BOTH),
        "sidecar~default~b": ProxySecrets(f"{FROM_OLD:x}", BOTH),  # not renewed yet
        "sidecar~default~c": ProxySecrets("ffff", BOTH),  # a serial this CA did not record
    }
    assert machine.observe(_obs(proxies)) is None
    assert machine.progress is not None
    assert machine.progress.waiting == (
        "1 of 3 proxies serve a certificate from the new root: waiting on "
        "sidecar~default~b, sidecar~default~c",
    )
    moved = {n: ProxySecrets("21", BOTH) for n in proxies}
    assert machine.observe(_obs(moved)) is not None


def test_issuing_waits_while_a_certificate_from_the_old_root_is_current() -> None:
    machine = _machine(Phase.ISSUING)
    proxies = {"sidecar~default~a": ProxySecrets("20", BOTH)}
    held = Held(FROM_OLD, "agent-7", T0 + timedelta(minutes=1), "spiffe://td/ns/x/sa/gw", OLD)
    assert machine.observe(_obs(proxies, current=[held])) is None
    assert machine.progress is not None
    (line,) = machine.progress.waiting
    assert line.startswith("1 certificate from the old root still current: spiffe://td/ns/x/sa/gw")
    assert "agent-7" in line
    # expired: no longer in use
    assert machine.observe(_obs(proxies, current=[held], now=T0 + timedelta(minutes=2)))


def test_issuing_waits_out_certificates_a_restarted_control_plane_did_not_record() -> None:
    machine = _machine(Phase.ISSUING)
    proxies = {"sidecar~default~a": ProxySecrets("20", BOTH)}
    until = T0 + timedelta(minutes=1)
    assert machine.observe(_obs(proxies, unrecorded_until=until)) is None
    assert machine.progress is not None
    assert "before this control plane started" in machine.progress.waiting[0]
    assert machine.observe(_obs(proxies, now=until, unrecorded_until=until)) is not None


def test_retiring_waits_for_the_bundle_without_the_old_root_then_is_done() -> None:
    machine = _machine(Phase.RETIRING)
    proxies = {"sidecar~default~a": ProxySecrets("20", BOTH)}
    assert machine.observe(_obs(proxies, ONLY_NEW)) is None
    assert machine.progress is not None
    assert machine.progress.waiting == (
        "0 of 1 proxies have the trust bundle without the old root: waiting on sidecar~default~a",
    )
    moved = machine.observe(_obs({"sidecar~default~a": ProxySecrets("20", ONLY_NEW)}, ONLY_NEW))
    assert moved is not None
    assert moved.phase is Phase.DONE
    machine.state = moved
    assert not machine.active
    assert machine.observe(_obs({}, ONLY_NEW)) is None
    assert machine.progress is None


def test_state_round_trips_through_json() -> None:
    state = RotationState(Phase.ISSUING, OLD, NEW, T0, T0 + timedelta(seconds=3))
    assert RotationState.from_json(state.to_json()) == state


def test_holders_current_is_the_newest_per_holder_and_identity_across_trust_domains() -> None:
    from gossamer.ca.holders import Holders

    holders = Holders(clock=lambda: T0)
    later = T0 + timedelta(hours=1)
    holders.record(1, "control-plane", later, spiffe_id="spiffe://a.local/gossamer/cp", root=OLD)
    holders.record(2, "agent-1", later, spiffe_id="spiffe://a.local/ns/d/sa/web", root=OLD)
    holders.record(3, "agent-2", later, spiffe_id="spiffe://a.local/ns/d/sa/web", root=OLD)
    # the Mesh changed its trust domain: these replace 1 and 2
    holders.record(4, "control-plane", later, spiffe_id="spiffe://b.local/gossamer/cp", root=NEW)
    holders.record(5, "agent-1", later, spiffe_id="spiffe://b.local/ns/d/sa/web", root=NEW)
    assert sorted(h.serial for h in holders.current()) == [3, 4, 5]
    assert holders.holder_of(1) == "control-plane"  # still known to the xDS check
