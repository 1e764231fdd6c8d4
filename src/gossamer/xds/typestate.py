"""One resource type of one ADS stream: what the proxy holds, and what it still needs.

``StreamState`` (``gossamer.xds.state``) keeps a ``TypeState`` per type and asks ``needs``
which names to send and to remove. It asks on every request and every new snapshot of a
stream, on the event loop, so the answer costs what changed, not the snapshot's size:

- the proxy holds exactly the snapshot's resources of the type (the content version of
  what it ACKed equals the snapshot's digest of the type) and nothing is in doubt: nothing
  to do, O(1), but the names forced again (endpoints after their cluster's update);
- it holds exactly what the snapshot's predecessor had (the digest the snapshot's diff of
  the type is against): the diff's changed names, O(changed), and the response's version
  is the snapshot's digest when the proxy will then hold all of it;
- otherwise every wanted resource is compared (a subscription that does not cover the
  snapshot, a NACK's doubt, a stream more than one snapshot behind). A snapshot without
  digests always takes this path; the answers are the same on every path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Versioned, content_version
from gossamer.xds.snapshot import Snapshot

#: the content version of nothing (what a stream's proxy holds at first)
NOTHING = content_version(())


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
class Inflight:
    out: Outgoing
    next_known: dict[str, str]
    at: float
    #: the content version of ``next_known`` when it is known without hashing it again
    next_version: str | None = None


@dataclass(slots=True)
class TypeState:
    type: ResourceType
    #: None: wildcard (every resource of the type)
    subscribed: set[str] | None = None
    #: SotW: the names of the last request that listed them (``subscribed`` as sent)
    last_names: list[str] | None = None
    #: what the proxy has ACKed, name -> version (replaced, never changed in place)
    known: dict[str, str] = field(default_factory=dict)
    #: the content version of ``known`` when every name in it is subscribed (None: unknown)
    known_version: str | None = NOTHING
    #: what the proxy last ACKed of full-state types in SotW (kept while a removal waits)
    last_sent: dict[str, Versioned] = field(default_factory=dict)
    inflight: Inflight | None = None
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
class Needs:
    """What one type still needs for a snapshot."""

    #: where the resources of ``changed`` are looked up; for a wildcard type also the whole
    #: set the proxy should hold (on the O(1) and diff paths: the snapshot's mapping)
    wanted: Mapping[str, Versioned]
    #: names to send (new, updated, forced or in doubt), in the order of ``wanted``
    changed: list[str]
    #: names to remove (full-state types only)
    removed: list[str]
    #: the version of the known set updated with ``changed``, when that is the snapshot's
    #: whole type (its digest); None: compute it
    version: str | None = None


def full_sets(ts: TypeState, delta: bool) -> bool:
    """Every response of this type carries the whole set (SotW clusters and listeners)."""
    return not delta and ts.type.full_state


def holds_all(ts: TypeState, snap: Snapshot) -> bool:
    """O(1): the proxy holds exactly this type of ``snap`` and nothing of it is in flight,
    forced or in doubt, so ``needs`` would find nothing to send. (False is no answer:
    ``needs`` then tells.) Most types of most streams are settled whenever a stream asks
    (after each response and each ACK): this spares them the rest of the way."""
    digests = snap.digests
    return (
        digests is not None
        and ts.inflight is None
        and ts.known_version == digests[ts.type]
        and not ts.force
        and not ts.doubt
        # (an unanswered wildcard type may still owe Envoy an empty first answer)
        and (ts.answered or ts.subscribed is not None or not ts.type.full_state)
    )


def wanted(ts: TypeState, snap: Snapshot) -> Mapping[str, Versioned]:
    resources = snap.of(ts.type)
    if ts.subscribed is None:
        return resources
    # asked for on every request and flush: computed once per (snapshot, subscription)
    cached = ts.wanted_cache
    if cached is not None and cached[0] is resources and cached[1] == ts.sub_version:
        return cached[2]
    result = {n: resources[n] for n in sorted(ts.subscribed) if n in resources}
    ts.wanted_cache = (resources, ts.sub_version, result)
    return result


def needs(ts: TypeState, snap: Snapshot, delta: bool) -> Needs:
    """What ``ts`` still needs for ``snap``: the cheapest path that gives the answer."""
    resources = snap.of(ts.type)
    digests = snap.digests
    sub = ts.subscribed
    if digests is None or ts.known_version is None or ts.doubt or (ts.force and sub is None):
        return _walk(ts, snap, delta)  # (forced names of a wildcard keep the snapshot's order)
    digest = digests[ts.type]
    if ts.known_version == digest:
        # The proxy holds exactly this type of the snapshot (every name subscribed).
        if not ts.force:
            return Needs(resources, [], [])
        return Needs(resources, sorted(n for n in ts.force if n in resources), [], digest)
    diff = snap.diffs.get(ts.type)
    if diff is None or diff.since != ts.known_version or (diff.removed and ts.type.full_state):
        return _walk(ts, snap, delta)  # (a full-state removal keeps the proxy's order)
    # The proxy holds exactly what the predecessor had (every name subscribed): only the
    # diff's names differ. The snapshot's other names are subscribed and unchanged.
    if sub is None:
        changed = list(diff.changed)
        whole = True
    else:
        names = {n for n in diff.changed if n in sub}
        whole = len(names) == len(diff.changed)
        names.update(n for n in ts.force if n in sub and n in resources)
        changed = sorted(names)
    # Envoy then holds the snapshot's whole type unless a name is not subscribed or one
    # it holds is gone (endpoints and routes linger until Envoy stops asking for them).
    return Needs(resources, changed, [], digest if whole and not diff.removed else None)


def _walk(ts: TypeState, snap: Snapshot, delta: bool) -> Needs:
    """The general path: every wanted resource compared with what the proxy holds."""
    want = wanted(ts, snap)
    # (a full set in doubt is sent again as a whole: see ``StreamState._build``)
    doubt = set() if full_sets(ts, delta) else ts.doubt
    changed = [
        n for n, v in want.items() if ts.known.get(n) != v.version or n in ts.force or n in doubt
    ]
    return Needs(want, changed, _removed(ts, want, delta))


def _removed(ts: TypeState, want: Mapping[str, Versioned], delta: bool) -> list[str]:
    if not ts.type.full_state:
        return []  # endpoints and routes go away with the clusters and listeners using them
    gone = [n for n in ts.known if n not in want]
    if delta:  # a NACKed new resource Envoy may have added anyway
        gone += sorted(n for n in ts.doubt if n not in want and n not in ts.known)
    return gone


def unanswered_empty(ts: TypeState, want: Mapping[str, Versioned]) -> bool:
    """A wildcard type the proxy asked for, of which it holds and should hold nothing,
    and was never answered: Envoy waits for a first answer (its initial fetch timeout,
    15 s) before it is ready, so an empty one is sent (a Gateway with no Routes has no
    clusters). Only proxies with a snapshot get here: one nobody registered gets
    nothing (fail static)."""
    return (
        ts.type.full_state
        and ts.subscribed is None
        and not ts.answered
        and not want
        and not ts.known
    )
