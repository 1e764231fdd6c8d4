"""Per-stream xDS protocol state: versions, nonces, ACK/NACK, subscriptions, push order.

A plain class, no I/O: the server feeds it requests (``on_request``) and asks it what to
send next (``plan``), then reports what it sent (``sent``). State-of-the-world and delta
share it; they differ only in how a response is shaped (``delta`` flag).

Ordering (see docs/xds.md): additions and updates go clusters -> endpoints -> listeners ->
filter configs (ECDS) -> routes, each type waiting until the ones before it are ACKed
(endpoints excepted: Envoy needs them to finish warming a cluster before it ACKs; the
routes and filter configs a warming listener newly asks for go at once). Removals go the
other way: listeners are removed only once routes no longer need them, clusters once
listeners and routes don't.
After a cluster update its endpoints are sent again (Envoy needs them but does not ask).

A NACKed response is not re-sent while its content is unchanged, except on a back-off timer
(0.5 s doubling to 10 s) so a proxy recovers when an outside cause (a port held by another
process) goes away. Envoy applies the valid resources of a response it rejects, so every
name a NACKed response carried is in doubt until a response carrying it is ACKed: when the
wanted config goes back to what Envoy last accepted, those names are sent again (a NACKed
new resource is removed again) and Envoy's ACK clears the NACK.

Every request and every new snapshot asks ``plan``/``in_sync`` on the event loop: what one
type still needs is answered by ``gossamer.xds.typestate.needs`` at the cost of what
changed (the snapshot's per-type digests and diffs), not of the snapshot's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gossamer.xds.resources import PUSH_ORDER, ResourceType
from gossamer.xds.serializer import Versioned, content_version
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.typestate import (
    Inflight,
    NackInfo,
    Needs,
    Outgoing,
    TypeState,
    full_sets,
    holds_all,
    needs,
    unanswered_empty,
    wanted,
)

__all__ = ["NackInfo", "Outgoing", "RequestOutcome", "StreamState", "TypeState"]

C, E, L, R = ResourceType.CLUSTER, ResourceType.ENDPOINT, ResourceType.LISTENER, ResourceType.ROUTE
X = ResourceType.EXTENSION_CONFIG

RETRY_FIRST = 0.5
RETRY_MAX = 10.0


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    kind: str  # "initial" | "ack" | "nack" | "subscribe" | "stale"
    type: ResourceType
    acked: Outgoing | None = None
    nack: NackInfo | None = None


class StreamState:
    def __init__(self, *, delta: bool) -> None:
        self.delta = delta
        self.types: dict[ResourceType, TypeState] = {t: TypeState(t) for t in ResourceType}
        self._nonce = 0
        #: the last response ``plan`` returned and the known set it was planned on: if
        #: ``sent`` gets that very response, its version is that of what the proxy will hold
        self._planned: tuple[Outgoing, dict[str, str]] | None = None

    # -- requests ----------------------------------------------------------------------------

    def on_request(
        self,
        rtype: ResourceType,
        *,
        nonce: str,
        now: float,
        version_info: str = "",
        names: list[str] | None = None,
        subscribe: list[str] | None = None,
        unsubscribe: list[str] | None = None,
        initial_versions: Mapping[str, str] | None = None,
        error: str | None = None,
        snapshot: Snapshot | None = None,
    ) -> RequestOutcome:
        """Record a DiscoveryRequest (SotW: ``names``/``version_info``; delta: the rest)."""
        ts = self.types[rtype]
        first = not ts.requested
        ts.requested = True
        self._update_subscription(ts, first, names, subscribe, unsubscribe)
        if first:
            if self.delta:
                ts.known = dict(initial_versions or {})
                sub = ts.subscribed
                covered = sub is None or all(n in sub for n in ts.known)
                ts.known_version = _version_of(ts.known) if covered else None
            elif version_info and snapshot is not None:
                want = wanted(ts, snapshot)
                if version_info == _version_of({n: v.version for n, v in want.items()}):
                    ts.known = {n: v.version for n, v in want.items()}
                    ts.known_version = version_info
                    ts.last_sent = dict(want) if rtype.full_state else {}
                    ts.acked_version = ts.sent_version = version_info
                    ts.answered = True
            return RequestOutcome("initial", rtype)
        if ts.inflight is not None and nonce == ts.inflight.out.nonce:
            sent = ts.inflight
            ts.inflight = None
            if error is not None:
                attempts = ts.nack.attempts + 1 if ts.nack else 1
                delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (attempts - 1))
                ts.nack = NackInfo(
                    sent.out.version, error, now, attempts, now + delay, _content(sent.out)
                )
                ts.doubt |= self._carried(ts, sent.out)
                return RequestOutcome("nack", rtype, sent.out, ts.nack)
            self._acked(ts, sent)
            return RequestOutcome("ack", rtype, sent.out)
        if nonce and nonce != ts.last_nonce:
            return RequestOutcome("stale", rtype)
        return RequestOutcome("subscribe", rtype)

    def _acked(self, ts: TypeState, sent: Inflight) -> None:
        # names dropped by this very request stay dropped
        sub = ts.subscribed
        nk = sent.next_known
        # (the subset test runs in C: a gateway's 10,000 names are not walked in Python)
        known = nk if sub is None or nk.keys() <= sub else {n: v for n, v in nk.items() if n in sub}
        ts.known = known
        whole = len(known) == len(nk) and sent.next_version is not None
        ts.known_version = sent.next_version if whole else _version_of(known)
        ts.acked_version = sent.out.version
        ts.nack = None
        if full_sets(ts, self.delta):
            ts.last_sent = {r.name: r for r in sent.out.resources}
            ts.doubt.clear()
        elif ts.doubt:
            ts.doubt -= self._carried(ts, sent.out)

    def _update_subscription(
        self,
        ts: TypeState,
        first: bool,
        names: list[str] | None,
        subscribe: list[str] | None,
        unsubscribe: list[str] | None,
    ) -> None:
        if ts.type.full_state:
            if self.delta and first and subscribe and "*" not in subscribe:
                ts.subscribed = set(subscribe)
                ts.sub_version += 1
            return
        new: set[str] | None
        if self.delta:
            current = set() if ts.subscribed is None else ts.subscribed
            new = (current | set(subscribe or ())) - set(unsubscribe or ())
        elif names is not None:
            # SotW: every request repeats the whole list, most often the same as the last
            # (compared as lists in C: a gateway's ACK names 10,000 endpoint sets)
            if names == ts.last_names:
                new = ts.subscribed
            else:
                new, ts.last_names = set(names), names
        else:
            new = ts.subscribed
        if new is None:
            return
        if new != ts.subscribed or ts.known_version is None:
            # (unknown: ``known`` may hold names never subscribed, e.g. delta's initial ones)
            if new != ts.subscribed:
                ts.subscribed = new
                ts.sub_version += 1
            if ts.known_version is None or not ts.known.keys() <= new:
                ts.known = {n: v for n, v in ts.known.items() if n in new}
                ts.known_version = _version_of(ts.known)
        if ts.doubt:
            ts.doubt &= new

    def _carried(self, ts: TypeState, out: Outgoing) -> set[str]:
        """The names ``out`` adds, updates or removes (a full set removes what it lacks)."""
        carried = {r.name for r in out.resources} | set(out.removed)
        if full_sets(ts, self.delta):
            carried |= ts.known.keys()
        return carried

    # -- responses ---------------------------------------------------------------------------

    def _pending(self, ts: TypeState, need: Needs) -> bool:
        """Something of this type is still to be sent (or confirmed) for ``need``."""
        return bool(
            need.changed
            or need.removed
            or (full_sets(ts, self.delta) and ts.doubt)
            or unanswered_empty(ts, need.wanted)
        )

    def _suppressed(self, ts: TypeState, out: Outgoing, now: float) -> bool:
        return ts.nack is not None and ts.nack.content == _content(out) and now < ts.nack.retry_at

    def plan(self, snap: Snapshot, now: float) -> tuple[Outgoing | None, float | None]:
        """The next response to send, if any, and when to ask again if a retry is waiting."""
        wake: float | None = None
        settled: dict[ResourceType, bool] = {}
        adds_settled: dict[ResourceType, bool] = {}
        candidates: list[tuple[ResourceType, Outgoing, bool]] = []  # (type, response, removal)
        for t in PUSH_ORDER:
            ts = self.types[t]
            if not ts.requested or holds_all(ts, snap) or ts.inflight is not None:
                # (a type in flight sends nothing before its answer, which asks again)
                settled[t] = adds_settled[t] = ts.inflight is None
                continue
            need = needs(ts, snap, self.delta)
            adds, rem = self._build(ts, need)
            for o in (adds, rem):
                if o is not None and self._suppressed(ts, o, now):
                    wake = min(wake, ts.nack.retry_at) if wake else ts.nack.retry_at  # type: ignore[union-attr]
            adds_live = adds is not None and not self._suppressed(ts, adds, now)
            rem_live = rem is not None and not self._suppressed(ts, rem, now)
            adds_settled[t] = not adds_live
            settled[t] = adds_settled[t] and not rem_live
            if adds_live:
                assert adds is not None
                if self._may_add(t, adds_settled):
                    candidates.append((t, adds, False))
                    continue
                fresh = [n for n in need.changed if n not in ts.known]
                if t in (X, R) and fresh:
                    # a warming listener needs its new routes and filter configs now; known
                    # ones wait their turn
                    known = {**ts.known, **{n: need.wanted[n].version for n in fresh}}
                    candidates.append(
                        (t, self._out(ts, [need.wanted[n] for n in fresh], (), known), False)
                    )
                    continue
            if rem_live:
                assert rem is not None
                candidates.append((t, rem, True))
        for t, out, removal in candidates:
            if removal and not self._may_remove(t, settled):
                continue
            self._planned = (out, self.types[t].known)
            return out, wake
        return None, wake

    def _may_add(self, t: ResourceType, adds_settled: Mapping[ResourceType, bool]) -> bool:
        if t in (C, E):
            return True
        if t is L:
            return adds_settled[C]
        if t is X:
            return adds_settled[C] and adds_settled[L]
        return adds_settled[C] and adds_settled[L] and adds_settled[X]

    def _may_remove(self, t: ResourceType, settled: Mapping[ResourceType, bool]) -> bool:
        if t is L:
            return settled[R]
        if t is C:
            return settled[L] and settled[R]
        return True

    def _build(self, ts: TypeState, need: Needs) -> tuple[Outgoing | None, Outgoing | None]:
        """(additions/updates response, removals response), either None if nothing to do."""
        want, changed, removed, version = need.wanted, need.changed, need.removed, need.version
        adds = rem = None
        if unanswered_empty(ts, want):
            return self._out(ts, [], (), {}), None
        if self.delta:
            if changed:
                nk = {**ts.known, **{n: want[n].version for n in changed}}
                adds = self._out(ts, [want[n] for n in changed], (), nk, version)
            if removed:
                nk = {n: v for n, v in ts.known.items() if n not in removed}
                rem = self._out(ts, [], removed, nk)
            return adds, rem
        if ts.type.full_state:  # (SotW full-state types are wildcards: ``want`` is all)
            if changed:
                keep = {n: ts.last_sent[n] for n in removed if n in ts.last_sent}
                content = {**keep, **want}
                nk = {n: v.version for n, v in content.items()}
                adds = self._out(ts, list(content.values()), (), nk, version)
            elif removed:
                nk = {n: v.version for n, v in want.items()}
                rem = self._out(ts, list(want.values()), (), nk)
            elif ts.doubt:
                # after a NACK, the set Envoy accepted again: it may have applied part of
                # the rejected one
                nk = {n: v.version for n, v in want.items()}
                adds = self._out(ts, list(want.values()), (), nk)
            return adds, rem
        if changed:
            nk = {**ts.known, **{n: want[n].version for n in changed}}
            adds = self._out(ts, [want[n] for n in changed], (), nk, version)
        return adds, None

    def _out(
        self,
        ts: TypeState,
        resources: list[Versioned],
        removed: tuple[str, ...] | list[str],
        next_known: Mapping[str, str],
        version: str | None = None,
    ) -> Outgoing:
        """A response that leaves the proxy holding ``next_known`` (whose content version is
        ``version`` when the caller knows it). The nonce is assigned in ``sent``; planning
        stays free of side effects."""
        if version is None:
            version = _version_of(next_known)
        return Outgoing(ts.type, "", version, tuple(resources), tuple(removed))

    def sent(self, out: Outgoing, snap: Snapshot, now: float) -> Outgoing:
        """Record that ``out`` is being sent; returns it with its nonce."""
        ts = self.types[out.type]
        planned = self._planned
        # ``out`` as planned, on the same known set: its version is that of ``nk`` below
        trusted = planned is not None and planned[0] is out and planned[1] is ts.known
        self._planned = None
        self._nonce += 1
        out = Outgoing(out.type, str(self._nonce), out.version, out.resources, out.removed)
        if self.delta:
            nk = {**ts.known, **{r.name: r.version for r in out.resources}}
            for n in out.removed:
                nk.pop(n, None)
        elif out.type.full_state:
            nk = {r.name: r.version for r in out.resources}
        else:
            nk = {**ts.known, **{r.name: r.version for r in out.resources}}
        if out.type is C:
            # (a cluster in doubt may have been updated by the response Envoy rejected)
            updated = {
                r.name
                for r in out.resources
                if r.name in ts.known and (ts.known[r.name] != r.version or r.name in ts.doubt)
            }
            self.types[E].force |= updated
        if ts.force:
            ts.force -= {r.name for r in out.resources}
        ts.inflight = Inflight(out, nk, now, out.version if trusted else None)
        ts.sent_version = out.version
        ts.last_nonce = out.nonce
        ts.responses += 1
        ts.answered = True
        return out

    def type_in_sync(self, rtype: ResourceType, snap: Snapshot) -> bool:
        """The proxy ACKed everything the snapshot holds of ``rtype`` (or never asked for
        it): the per-type push latency (``gossamer.xds.monitor``) ends here."""
        ts = self.types[rtype]
        if not ts.requested or holds_all(ts, snap):
            return True
        return ts.inflight is None and not self._pending(ts, needs(ts, snap, self.delta))

    def in_sync(self, snap: Snapshot) -> bool:
        """Every requested type has ACKed everything the snapshot holds for it."""
        types = self.types.values()
        # (a response in flight answers it without asking what any type needs)
        if any(ts.inflight is not None for ts in types):
            return False
        for ts in types:
            if (
                ts.requested
                and not holds_all(ts, snap)
                and self._pending(ts, needs(ts, snap, self.delta))
            ):
                return False
        return True


def _version_of(known: Mapping[str, str]) -> str:
    return content_version(known.items())


def _content(out: Outgoing) -> frozenset[tuple[str, str]]:
    return frozenset({(r.name, r.version) for r in out.resources} | {(n, "") for n in out.removed})
