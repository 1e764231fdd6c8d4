"""mTLS readiness across control-plane replicas (docs/store.md, "Replicas").

Readiness (``controlplane.tls_readiness``) is judged from what a replica sees itself: the
ACKs on its own xDS streams and the secrets its agents' heartbeats report. With several
replicas a sidecar streams from one, its agent's heartbeats may reach another, and its
callers stream from others still. Judged alone, the replica serving a strict sidecar saw
none of its callers and let it refuse plaintext, while the replica serving the callers had
never seen it ready and kept them on plaintext: every call failed (found by
``bench/chaos.py``).

So each replica shares three facts (``TlsFacts``) with the others (through etcd, with the
hosts it sees alive: ``store.etcd_presence``):

- ``holding``: proxies whose Envoy holds its secrets, as its agent reported here;
- ``ready``: workloads whose sidecar streams from this replica and is ready for mTLS;
- ``marked``: workloads of strict services this replica marks, with every proxy streaming
  from it that holds their endpoints synced on that (none holding them counts);
- ``streaming``: workloads whose sidecar streams from this replica.

and judges with everyone's: a workload is ready if any replica says so, and a strict one
refuses plaintext only when every other replica says it is marked there (a confirmation,
not the absence of an objection: a replica that has not spoken yet holds it back). A
replica serves no xDS stream before it has shared its facts and read the others' once
(``store.etcd_presence``), so a proxy that moves to it is given the marks the others
confirmed. A replica that dies takes its facts with it when its lease expires; until then
its confirmations stand for proxies that have moved to replicas which know the same.

What every replica knew ready is also kept in etcd beyond any lease (``kept``), and a
replica that starts begins from it: after a restart of every replica, a caller that
reconnects before its strict callee is given the marks the callee's Envoy still counts on.

A workload stays ready while its sidecar streams from no replica (its replica died and it
has not reconnected): its Envoy keeps the TLS listener it had, which may refuse plaintext,
so its callers must not fall back to plaintext meanwhile. A sidecar that reconnects after
being ready is ready again at once if its Envoy still holds its secrets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.translate.tls import TlsState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFacts:
    holding: frozenset[str] = frozenset()
    ready: frozenset[Ref] = frozenset()
    marked: frozenset[Ref] = frozenset()
    streaming: frozenset[Ref] = frozenset()

    def to_json(self) -> bytes:
        def refs(found: Iterable[Ref]) -> list[str]:
            return sorted(f"{ns}/{name}" for ns, name in found)

        doc = {
            "holding": sorted(self.holding),
            "ready": refs(self.ready),
            "marked": refs(self.marked),
            "streaming": refs(self.streaming),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> TlsFacts:
        """The facts in ``raw``; empty ones (and a warning naming ``where``) if malformed."""
        try:
            doc = json.loads(raw)

            def refs(key: str) -> frozenset[Ref]:
                out = set()
                for text in doc.get(key, []):
                    ns, sep, name = str(text).partition("/")
                    if not sep or not ns or not name:
                        raise ValueError(f"{key}: {text!r} is not NAMESPACE/NAME")
                    out.add((ns, name))
                return frozenset(out)

            holding = frozenset(map(str, doc.get("holding", [])))
            return cls(holding, refs("ready"), refs("marked"), refs("streaming"))
        except (ValueError, TypeError, AttributeError) as e:
            log.warning("mTLS readiness shared by %s is malformed (%s); ignored", where, e)
            return cls()

    @classmethod
    def combined(cls, facts: Iterable[TlsFacts]) -> TlsFacts | None:
        """What several replicas say together: holding and ready by any, marked by all
        (None for no replica)."""
        found = list(facts)
        if not found:
            return None
        marked = frozenset[Ref].intersection(*(f.marked for f in found))
        holding = frozenset[str]().union(*(f.holding for f in found))
        ready = frozenset[Ref]().union(*(f.ready for f in found))
        return cls(holding, ready, marked, frozenset[Ref]().union(*(f.streaming for f in found)))


class Readiness(Protocol):
    """What sharing reads and tells of ``controlplane.tls_readiness.TlsReadiness``."""

    replicated: bool

    def local_facts(self, model: ModelSnapshot, published: TlsState) -> TlsFacts: ...

    def set_remote(self, facts: TlsFacts | None) -> bool: ...

    def seed(self, refs: Iterable[Ref]) -> None: ...

    def state(self) -> TlsState: ...

    def refresh(self, model: ModelSnapshot, published: TlsState = ...) -> bool: ...


class SharedTls:
    """This replica's ``TlsFacts`` for the others (``document``), and theirs taken in
    (``take``); ``changed`` is called when readiness must be published again."""

    def __init__(
        self,
        readiness: Readiness,
        model: Callable[[], ModelSnapshot | None],
        published: Callable[[], TlsState],
        changed: Callable[[], None],
    ) -> None:
        self._readiness = readiness
        readiness.replicated = True
        self._model = model
        self._published = published
        self._changed = changed

    def document(self) -> bytes | None:
        """This replica's facts now (None before its model is loaded)."""
        model = self._model()
        if model is None:
            return None
        return self._readiness.local_facts(model, self._published()).to_json()

    def kept(self) -> bytes | None:
        """What the replicas keep beyond any one's life: the workloads ready (None before
        the model is loaded)."""
        if self._model() is None:
            return None
        return TlsFacts(ready=self._readiness.state().ready).to_json()

    def take_kept(self, raw: bytes) -> None:
        """What was kept before this replica started: its sidecars' Envoys still hold the
        listeners they had, so their callers stay on mTLS across a restart of every
        replica."""
        self._readiness.seed(TlsFacts.from_json(raw, "the kept readiness").ready)

    def take(self, documents: Mapping[str, bytes]) -> None:
        """The other replicas' documents (replica -> its last ``document``)."""
        facts = TlsFacts.combined(
            TlsFacts.from_json(raw, f"replica {r}") for r, raw in documents.items()
        )
        if not self._readiness.set_remote(facts):
            return
        if facts is not None:
            ready, marked = sorted(map("/".join, facts.ready)), sorted(map("/".join, facts.marked))
            log.info("mTLS from the other replicas: ready %s; marked by all %s", ready, marked)
        model = self._model()
        if model is not None and self._readiness.refresh(model, self._published()):
            self._changed()
