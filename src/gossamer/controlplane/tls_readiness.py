"""Which sidecars take mTLS, learned from what their Envoys ACKed (the ``TlsState`` that
translation takes as plain data; docs/security.md, "mTLS modes").

Turning mTLS on must fail no request, so nothing is switched before the other side can
take it:

1. a TLS-capable sidecar whose service is not ``off`` is given an inbound listener that
   takes mTLS *and* plaintext;
2. once it has ACKed a snapshot with that listener *and* its Envoy holds its secrets it is
   **ready**: the next round marks its endpoints in EDS, and callers send it mTLS;
3. a ``strict`` one is **enforced** once every capable proxy holding its endpoints has
   ACKed them with the mark: only then does its listener refuse plaintext.

A sidecar that disconnects or is given a listener without TLS (its service moved to
``off``) stops being ready and so enforced; it starts again from step 1. Which proxies are
TLS-capable (their Envoy gets secrets over SDS) is told by ``set_capable``.

Why step 2 needs the secrets as well (measured with Envoy 1.40): Envoy ACKs a listener as
soon as it accepted it, while the listener is still *warming* until SDS delivered its
certificate; meanwhile the old (plaintext) listener keeps serving, and mTLS sent to it
fails. Which proxies' Envoys hold the ``identity`` and ``trust-bundle`` secrets is what
their agents report with their heartbeat (``set_holding``); Envoy warms a listener whose
secrets it already holds at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from envoy.config.listener.v3 import listener_pb2

from gossamer.controlplane.tls_shared import TlsFacts
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.translate import names
from gossamer.translate.tls import NO_TLS, TlsState, accepts_tls, mode_of
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.resources import ResourceType
from gossamer.xds.snapshot import Snapshot

log = logging.getLogger(__name__)

#: listener-set versions remembered (whether they take TLS) before the memo starts over
_MAX_REMEMBERED = 4096


class Acks(Protocol):
    """What readiness reads of the xDS monitor (``gossamer.xds.monitor.XdsMonitor``)."""

    def synced(self, node_id: str, snap: Snapshot) -> bool:
        """Has ``node_id`` ACKed all of ``snap`` (its newest snapshot)?"""
        ...


class TlsReadiness:
    def __init__(self, cache: SnapshotCache, monitor: Acks) -> None:
        self._cache = cache
        self._monitor = monitor
        self.capable: frozenset[str] = frozenset()
        #: proxies whose Envoy holds its identity and trust bundle (their agents said so)
        self.holding: frozenset[str] = frozenset()
        self._ready: frozenset[Ref] = frozenset()
        self._enforced: frozenset[Ref] = frozenset()
        #: listener-set version -> does every inbound listener in it take TLS?
        self._takes_tls: dict[str, bool] = {}
        #: what the other replicas judge together (None: there are none)
        self.remote: TlsFacts | None = None
        #: one replica of several (``controlplane.tls_shared``), even while alone
        self.replicated = False
        #: the workloads ready by what this replica sees itself, and those streaming here
        self._ready_here: frozenset[Ref] = frozenset()
        self._streaming: frozenset[Ref] = frozenset()
        self._state = TlsState()

    def state(self) -> TlsState:
        """What the next round should translate with: the same object while nothing in
        it changed (translation keys what it looked up by it: a new but equal state made
        the first proxy of every round look its clusters up again)."""
        now = TlsState(self.capable, self._ready, self._enforced)
        if now != self._state:
            self._state = now
        return self._state

    def set_capable(self, node_ids: frozenset[str]) -> bool:
        """Proxies whose Envoy can get secrets over SDS; True if that changed."""
        changed = node_ids != self.capable
        self.capable = node_ids
        return changed

    def set_holding(self, node_ids: frozenset[str]) -> bool:
        """Proxies whose Envoy ACKed its ``identity`` and ``trust-bundle`` secrets over SDS;
        True if that changed."""
        changed = node_ids != self.holding
        self.holding = node_ids
        return changed

    def seed(self, refs: Iterable[Ref]) -> None:
        """Workloads the replicas knew ready before this one started (``tls_shared``):
        ready here too until what this replica sees says otherwise."""
        self._ready = self._ready | frozenset(refs)

    def set_remote(self, facts: TlsFacts | None) -> bool:
        """What the other replicas judge; True if that changed."""
        changed = facts != self.remote
        self.remote = facts
        return changed

    def refresh(self, model: ModelSnapshot, published: TlsState = NO_TLS) -> bool:
        """Recompute readiness from the proxies' ACKs; ``published``: the state the last
        round translated with. True if the next round must publish a new state."""
        ready: set[Ref] = set()
        remote = self.remote or TlsFacts()
        holding = self.holding | remote.holding
        holders: list[tuple[str, Snapshot]] = []
        # (only capable proxies count: a refresh follows every burst of ACKs, and reading
        # every connected proxy's identity cost ~3 ms at 1,000 when none was capable)
        streaming: set[Ref] = set()
        for node_id in self.capable:
            proxy = self._cache.identity(node_id)
            snap = self._cache.get(node_id)
            if proxy is None or snap is None:
                continue
            holders.append((node_id, snap))
            ref = (proxy.namespace, proxy.name)
            if proxy.kind != "sidecar" or ref not in model.workloads:
                continue
            streaming.add(ref)
            if not self._offers_tls(snap):
                continue
            # (with replicas the report of its secrets reaches one replica and may lapse
            # while the agent moves to another: once ready, it stays so while it takes TLS)
            if node_id not in holding and not (self.replicated and ref in self._ready):
                continue
            # (ready before, here or at another replica: its Envoy holds that listener still)
            if ref in self._ready or self._monitor.synced(node_id, snap):
                ready.add(ref)
        self._ready_here, self._streaming = frozenset(ready), frozenset(streaming)
        ready |= {ref for ref in remote.ready if ref in model.workloads}
        if self.replicated:
            # A sidecar streaming from no replica (its replica died, it has not reconnected
            # yet) keeps its Envoy and the TLS listener it had: it stays ready, so that its
            # callers never fall back to plaintext that its listener may refuse.
            elsewhere = streaming | remote.streaming
            ready |= {r for r in self._ready if r in model.workloads and r not in elsewhere}
        enforced = {ref for ref in self._enforced if ref in ready}
        for ref in published.ready - enforced:
            w = model.workloads.get(ref)
            # (only the replica its sidecar streams from decides: the listener is its to send;
            # and only once every other replica confirmed its callers hold the mark)
            if w is None or ref not in self._ready_here:
                continue
            if self.remote is not None and ref not in self.remote.marked:
                continue
            service = (ref[0], w.spec.service)
            if mode_of(model, service) == "strict" and self._callers_synced(service, holders):
                enforced.add(ref)
        if enforced != self._enforced or ready != self._ready:
            log.info(
                "mTLS: ready %s; refusing plaintext %s",
                changes(self._ready, ready),
                changes(self._enforced, enforced),
            )
        self._ready, self._enforced = frozenset(ready), frozenset(enforced)
        return self.state() != published

    def strict_pending(self, model: ModelSnapshot, published: TlsState) -> list[str]:
        """Node ids of connected TLS-capable sidecars of ``strict`` services that still take
        plaintext: not enforced in ``published``, or not yet synced on what enforces it
        (``apply --wait`` waits for these)."""
        pending = []
        for proxy in self._cache.connected():
            node_id = proxy.node_id
            ref = (proxy.namespace, proxy.name)
            w = model.workloads.get(ref)
            if proxy.kind != "sidecar" or node_id not in self.capable or w is None:
                continue
            if mode_of(model, (ref[0], w.spec.service)) != "strict":
                continue
            snap = self._cache.get(node_id)
            if (
                ref not in published.enforced
                or snap is None
                or not self._monitor.synced(node_id, snap)
            ):
                pending.append(node_id)
        return sorted(pending)

    def local_facts(self, model: ModelSnapshot, published: TlsState) -> TlsFacts:
        """What this replica shares with the others (``controlplane.tls_shared``): the
        holding its agents reported here, the workloads ready by its own streams, and the
        strict services' workloads it marks with every proxy here holding them synced."""
        strict: dict[str, list[Ref]] = {}  # outbound prefix -> its marked workloads
        for ref in published.ready:
            w = model.workloads.get(ref)
            if w is not None and mode_of(model, (ref[0], w.spec.service)) == "strict":
                strict.setdefault(names.outbound_prefix((ref[0], w.spec.service)), []).append(ref)
        unsynced: set[str] = set()
        for node_id in self.capable if strict else ():
            snap = self._cache.get(node_id)
            if snap is None or self._monitor.synced(node_id, snap):
                continue
            # (an endpoint set is named ``outbound|<ns>/<service>|...``: its first two fields)
            endpoints = snap.of(ResourceType.ENDPOINT)
            unsynced |= {n[: n.find("|", n.find("|") + 1) + 1] for n in endpoints}
        marked = {ref for prefix, refs in strict.items() if prefix not in unsynced for ref in refs}
        return TlsFacts(self.holding, self._ready_here, frozenset(marked), self._streaming)

    def _offers_tls(self, snap: Snapshot) -> bool:
        version = snap.version(ResourceType.LISTENER)
        known = self._takes_tls.get(version)
        if known is None:
            if len(self._takes_tls) >= _MAX_REMEMBERED:
                self._takes_tls.clear()
            listeners = {}
            for name, v in snap.of(ResourceType.LISTENER).items():
                msg = listener_pb2.Listener()
                v.resource.Unpack(msg)
                listeners[name] = msg
            known = self._takes_tls[version] = accepts_tls(listeners)
        return known

    def _callers_synced(self, service: Ref, holders: list[tuple[str, Snapshot]]) -> bool:
        """Has every capable proxy holding ``service``'s endpoints ACKed what it was given
        (built with the mark, as the last round published it)?"""
        prefix = names.outbound_prefix(service)
        for node_id, snap in holders:
            held = snap.of(ResourceType.ENDPOINT)
            holds = any(name.startswith(prefix) for name in held)
            if holds and not self._monitor.synced(node_id, snap):
                return False
        return True


def changes(before: Iterable[Ref], after: Iterable[Ref], most: int = 10) -> str:
    """``+ns/a -ns/b`` (``=`` when nothing changed; past ``most``, how many more), for the
    log."""
    old, new = set(before), set(after)
    moved = [f"+{ns}/{n}" for ns, n in sorted(new - old)] + [
        f"-{ns}/{n}" for ns, n in sorted(old - new)
    ]
    more = f" and {len(moved) - most} more" if len(moved) > most else ""
    return " ".join(moved[:most]) + more or "="
