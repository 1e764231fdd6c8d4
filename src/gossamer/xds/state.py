"""Per-stream xDS protocol state: versions, nonces, ACK/NACK, subscriptions, push order.

A plain class, no I/O: the server feeds it requests (``on_request``) and asks it what to
send next (``plan``), then reports what it sent (``sent``). State-of-the-world and delta
share it; they differ only in how a response is shaped (``delta`` flag).

Ordering (see docs/xds.md): additions and updates go clusters -> endpoints -> listeners ->
routes, each type waiting until the ones before it are ACKed (endpoints excepted: Envoy needs
them to finish warming a cluster before it ACKs). Removals go the other way: listeners are
removed only once routes no longer need them, clusters once listeners and routes don't.
After a cluster update its endpoints are sent again (Envoy needs them but does not ask).

A NACKed response is not re-sent while its content is unchanged, except on a back-off timer
(0.5 s doubling to 10 s) so a proxy recovers when an outside cause (a port held by another
process) goes away. Envoy applies the valid resources of a response it rejects, so every
name a NACKed response carried is in doubt until a response carrying it is ACKed: when the
wanted config goes back to what Envoy last accepted, those names are sent again (a NACKed
new resource is removed again) and Envoy's ACK clears the NACK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gossamer.xds.resources import PUSH_ORDER, ResourceType
from gossamer.xds.snapshot import Snapshot, Versioned, content_version

C, E, L, R = ResourceType.CLUSTER, ResourceType.ENDPOINT, ResourceType.LISTENER, ResourceType.ROUTE

RETRY_FIRST = 0.5
RETRY_MAX = 10.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One response to send."""

    type: ResourceType
    nonce: str
    version: str
    resources: tuple[Versioned, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NackInfo:
    version: str
    message: str
    at: float
    attempts: int
    retry_at: float
    content: frozenset[tuple[str, str]]


@dataclass(slots=True)
class _Inflight:
    out: Outgoing
    next_known: dict[str, str]
    at: float


@dataclass(slots=True)
class TypeState:
    type: ResourceType
    #: None: wildcard (every resource of the type)
    subscribed: set[str] | None = None
    #: what the proxy has ACKed, name -> version
    known: dict[str, str] = field(default_factory=dict)
    #: what the proxy last ACKed of full-state types in SotW (kept while a removal waits)
    last_sent: dict[str, Versioned] = field(default_factory=dict)
    inflight: _Inflight | None = None
    requested: bool = False
    sent_version: str = ""
    acked_version: str = ""
    last_nonce: str = ""
    nack: NackInfo | None = None
    #: names to send again even if the proxy has them (endpoints after a cluster update)
    force: set[str] = field(default_factory=set)
    #: names a NACKed response carried: Envoy may have applied them, so what it runs for
    #: them is unknown until an ACKed response carries them (or, SotW full sets, any ACK)
    doubt: set[str] = field(default_factory=set)
    responses: int = 0
    #: a response of this type was sent on this stream (or SotW: the proxy already holds
    #: what we would send); an unanswered wildcard type gets one even when it is empty
    answered: bool = False
    #: bumped whenever ``subscribed`` changes (keys ``wanted_cache``)
    sub_version: int = 0
    wanted_cache: tuple[object, int, dict[str, Versioned]] | None = None


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
            elif version_info and snapshot is not None:
                wanted = self._wanted(ts, snapshot)
                if version_info == self._version_of({n: v.version for n, v in wanted.items()}):
                    ts.known = {n: v.version for n, v in wanted.items()}
                    ts.last_sent = dict(wanted) if rtype.full_state else {}
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
            # names dropped by this very request stay dropped
            ts.known = {
                n: v
                for n, v in sent.next_known.items()
                if ts.subscribed is None or n in ts.subscribed
            }
            ts.acked_version = sent.out.version
            ts.nack = None
            if self._full_sets(ts):
                ts.last_sent = {r.name: r for r in sent.out.resources}
                ts.doubt.clear()
            else:
                ts.doubt -= self._carried(ts, sent.out)
            return RequestOutcome("ack", rtype, sent.out)
        if nonce and nonce != ts.last_nonce:
            return RequestOutcome("stale", rtype)
        return RequestOutcome("subscribe", rtype)

    def _update_subscription(
        self,
        ts: TypeState,
        first: bool,
        names: list[str] | None,
        subscribe: list[str] | None,
        unsubscribe: list[str] | None,
    ) -> None:
        ts.sub_version += 1
        if ts.type.full_state:
            if self.delta and first and subscribe and "*" not in subscribe:
                ts.subscribed = set(subscribe)
            return
        if self.delta:
            current = set() if ts.subscribed is None else ts.subscribed
            current |= set(subscribe or ())
            current -= set(unsubscribe or ())
            ts.subscribed = current
        elif names is not None:
            ts.subscribed = set(names)
        if ts.subscribed is not None:
            for name in list(ts.known):
                if name not in ts.subscribed:
                    del ts.known[name]
            ts.doubt &= ts.subscribed

    def _full_sets(self, ts: TypeState) -> bool:
        """Every response of this type carries the whole set (SotW clusters and listeners)."""
        return not self.delta and ts.type.full_state

    def _carried(self, ts: TypeState, out: Outgoing) -> set[str]:
        """The names ``out`` adds, updates or removes (a full set removes what it lacks)."""
        carried = {r.name for r in out.resources} | set(out.removed)
        if self._full_sets(ts):
            carried |= ts.known.keys()
        return carried

    # -- responses ---------------------------------------------------------------------------

    def _wanted(self, ts: TypeState, snap: Snapshot) -> Mapping[str, Versioned]:
        resources = snap.of(ts.type)
        if ts.subscribed is None:
            return resources
        # asked for on every request and flush: computed once per (snapshot, subscription)
        cached = ts.wanted_cache
        if cached is not None and cached[0] is resources and cached[1] == ts.sub_version:
            return cached[2]
        wanted = {n: resources[n] for n in sorted(ts.subscribed) if n in resources}
        ts.wanted_cache = (resources, ts.sub_version, wanted)
        return wanted

    def _changed(self, ts: TypeState, wanted: Mapping[str, Versioned]) -> list[str]:
        # (a full set in doubt is sent again as a whole: see ``_build``)
        doubt = set() if self._full_sets(ts) else ts.doubt
        return [
            n
            for n, v in wanted.items()
            if ts.known.get(n) != v.version or n in ts.force or n in doubt
        ]

    def _removed(self, ts: TypeState, wanted: Mapping[str, Versioned]) -> list[str]:
        if not ts.type.full_state:
            return []  # endpoints and routes go away with the clusters and listeners using them
        gone = [n for n in ts.known if n not in wanted]
        if self.delta:  # a NACKed new resource Envoy may have added anyway
            gone += sorted(n for n in ts.doubt if n not in wanted and n not in ts.known)
        return gone

    def _pending(self, ts: TypeState, wanted: Mapping[str, Versioned]) -> bool:
        """Something of this type is still to be sent (or confirmed) for ``wanted``."""
        return bool(
            self._changed(ts, wanted)
            or self._removed(ts, wanted)
            or (self._full_sets(ts) and ts.doubt)
            or self._unanswered_empty(ts, wanted)
        )

    def _unanswered_empty(self, ts: TypeState, wanted: Mapping[str, Versioned]) -> bool:
        """A wildcard type the proxy asked for, of which it holds and should hold nothing,
        and was never answered: Envoy waits for a first answer (its initial fetch timeout,
        15 s) before it is ready, so an empty one is sent (a Gateway with no Routes has no
        clusters). Only proxies with a snapshot get here: one nobody registered gets
        nothing (fail static)."""
        return (
            ts.type.full_state
            and ts.subscribed is None
            and not ts.answered
            and not wanted
            and not ts.known
        )

    def _version_of(self, known: Mapping[str, str]) -> str:
        return content_version(known.items())

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
            wanted = self._wanted(ts, snap)
            changed = self._changed(ts, wanted)
            removed = self._removed(ts, wanted)
            built = self._build(ts, wanted, changed, removed) if ts.requested else None
            adds = built[0] if built else None
            rem = built[1] if built else None
            for o in (adds, rem):
                if o is not None and self._suppressed(ts, o[0], now):
                    wake = min(wake, ts.nack.retry_at) if wake else ts.nack.retry_at  # type: ignore[union-attr]
            adds_live = adds is not None and not self._suppressed(ts, adds[0], now)
            rem_live = rem is not None and not self._suppressed(ts, rem[0], now)
            adds_settled[t] = ts.inflight is None and not adds_live
            settled[t] = adds_settled[t] and not rem_live
            if ts.inflight is not None or not ts.requested:
                continue
            if adds_live:
                assert adds is not None
                if self._may_add(t, adds_settled):
                    candidates.append((t, adds[0], False))
                    continue
                fresh = [n for n in changed if n not in ts.known]
                if t is R and fresh:
                    # a warming listener needs its new routes now; known ones wait their turn
                    known = {**ts.known, **{n: wanted[n].version for n in fresh}}
                    candidates.append(
                        (t, self._out(ts, [wanted[n] for n in fresh], (), known), False)
                    )
                    continue
            if rem_live:
                assert rem is not None
                candidates.append((t, rem[0], True))
        for t, out, removal in candidates:
            if removal and not self._may_remove(t, settled):
                continue
            return out, wake
        return None, wake

    def _may_add(self, t: ResourceType, adds_settled: Mapping[ResourceType, bool]) -> bool:
        if t in (C, E):
            return True
        if t is L:
            return adds_settled[C]
        return adds_settled[C] and adds_settled[L]

    def _may_remove(self, t: ResourceType, settled: Mapping[ResourceType, bool]) -> bool:
        if t is L:
            return settled[R]
        if t is C:
            return settled[L] and settled[R]
        return True

    def _build(
        self,
        ts: TypeState,
        wanted: Mapping[str, Versioned],
        changed: list[str],
        removed: list[str],
    ) -> tuple[tuple[Outgoing, dict[str, str]] | None, tuple[Outgoing, dict[str, str]] | None]:
        """(additions/updates response, removals response), either None if nothing to do."""
        adds = rem = None
        if self._unanswered_empty(ts, wanted):
            return (self._out(ts, [], (), {}), {}), None
        if self.delta:
            if changed:
                nk = {**ts.known, **{n: wanted[n].version for n in changed}}
                adds = (self._out(ts, [wanted[n] for n in changed], (), nk), nk)
            if removed:
                nk = {n: v for n, v in ts.known.items() if n not in removed}
                rem = (self._out(ts, [], removed, nk), nk)
            return adds, rem
        if ts.type.full_state:
            if changed:
                keep = {n: ts.last_sent[n] for n in removed if n in ts.last_sent}
                content = {**keep, **wanted}
                nk = {n: v.version for n, v in content.items()}
                adds = (self._out(ts, list(content.values()), (), nk), nk)
            elif removed:
                nk = {n: v.version for n, v in wanted.items()}
                rem = (self._out(ts, list(wanted.values()), (), nk), nk)
            elif ts.doubt:
                # after a NACK, the set Envoy accepted again: it may have applied part of
                # the rejected one
                nk = {n: v.version for n, v in wanted.items()}
                adds = (self._out(ts, list(wanted.values()), (), nk), nk)
            return adds, rem
        if changed:
            nk = {**ts.known, **{n: wanted[n].version for n in changed}}
            adds = (self._out(ts, [wanted[n] for n in changed], (), nk), nk)
        return adds, None

    def _out(
        self,
        ts: TypeState,
        resources: list[Versioned],
        removed: tuple[str, ...] | list[str],
        next_known: Mapping[str, str],
    ) -> Outgoing:
        # The nonce is assigned in ``sent``; planning stays free of side effects.
        return Outgoing(ts.type, "", self._version_of(next_known), tuple(resources), tuple(removed))

    def sent(self, out: Outgoing, snap: Snapshot, now: float) -> Outgoing:
        """Record that ``out`` is being sent; returns it with its nonce."""
        self._nonce += 1
        out = Outgoing(out.type, str(self._nonce), out.version, out.resources, out.removed)
        ts = self.types[out.type]
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
        ts.force -= {r.name for r in out.resources}
        ts.inflight = _Inflight(out, nk, now)
        ts.sent_version = out.version
        ts.last_nonce = out.nonce
        ts.responses += 1
        ts.answered = True
        return out

    def in_sync(self, snap: Snapshot) -> bool:
        """Every requested type has ACKed everything the snapshot holds for it."""
        for ts in self.types.values():
            if not ts.requested:
                continue
            if ts.inflight is not None:
                return False
            if self._pending(ts, self._wanted(ts, snap)):
                return False
        return True


def _content(out: Outgoing) -> frozenset[tuple[str, str]]:
    return frozenset({(r.name, r.version) for r in out.resources} | {(n, "") for n in out.removed})
