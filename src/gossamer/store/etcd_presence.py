"""Which agents' hosts each control-plane replica sees alive, shared through etcd.

The liveness rule (``registry.liveness``) is judged by each replica from the heartbeats and
ADS streams it sees itself; with several replicas a host whose agent calls one replica and
whose Envoys stream to another would look dead to a third. So each replica writes
``<prefix>/presence/<host>/<replica>`` for every host it judges alive, bound to a lease of
its own, and deletes the key when it judges the host dead; a replica calls a host dead only
when it does itself and no other replica's key says otherwise (``HostPresence``).

Heartbeats write nothing: a key is written when this replica's judgement of a host changes,
and the lease is kept alive (etcd's ``LeaseKeepAlive``, no revision) every ``every``
seconds. A replica that stops (revokes its lease) or dies (its lease expires after ``ttl``
seconds) takes its keys with it. Other replicas' keys are read every ``every`` seconds.

The same rounds carry a document each replica shares with the others (``document``, e.g.
its mTLS readiness: ``controlplane.tls_shared``) at ``<prefix>/replica/<replica>``, bound to
the same lease: written when it changed, and every other replica's read each round
(``on_documents`` when theirs changed); and a document the replicas keep beyond any lease
(``kept``, at ``<prefix>/kept``: written when this replica's changed, read once at the
first round, before the first ``on_documents``, by ``on_kept``), so that what they knew
outlives a restart of all of them.

``PresenceClaims`` is the state (no I/O); ``EtcdPresence`` keeps it in etcd.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping

import aetcd.rpc as rpc  # type: ignore[import-untyped]

from gossamer.store.etcd import EtcdStore
from gossamer.store.etcd_keys import prefix_end
from gossamer.store.etcd_lease import EtcdLease, what_failed

log = logging.getLogger(__name__)

#: seconds an etcd lease lives without a keep-alive: how long a dead replica's claims last
LEASE_TTL = 10
#: seconds between two rounds (keep-alive, writes, reading the others' claims)
EVERY = 1.0


class PresenceClaims:
    """This replica's claims (the hosts it judges alive) and the other replicas'."""

    def __init__(self, replica: str) -> None:
        self.replica = replica
        #: the hosts this replica judges alive, as last published
        self.wanted: frozenset[str] = frozenset()
        #: the hosts whose key this replica holds in etcd (under its current lease)
        self.written: frozenset[str] = frozenset()
        #: the hosts some other replica judges alive, as last read
        self.elsewhere: frozenset[str] = frozenset()

    def publish(self, alive: Iterable[str]) -> None:
        self.wanted = frozenset(alive)

    def pending(self) -> tuple[frozenset[str], frozenset[str]]:
        """``(keys to put, keys to delete)`` to make etcd hold what is wanted."""
        return self.wanted - self.written, self.written - self.wanted

    def wrote(self, put: Iterable[str], deleted: Iterable[str]) -> None:
        self.written = (self.written | frozenset(put)) - frozenset(deleted)

    def lease_lost(self) -> None:
        """The lease is gone, and every key bound to it: all must be written again."""
        self.written = frozenset()

    def read(self, keys: Iterable[tuple[str, str]]) -> bool:
        """The ``(host, replica)`` keys etcd holds; True if the others' claims changed."""
        elsewhere = frozenset(host for host, replica in keys if replica != self.replica)
        changed = elsewhere != self.elsewhere
        self.elsewhere = elsewhere
        return changed


class EtcdPresence:
    """Keeps ``PresenceClaims`` in the etcd of ``store`` until cancelled, then revokes its
    lease. ``on_change`` is called when the other replicas' claims change."""

    def __init__(
        self,
        store: EtcdStore,
        *,
        replica: str | None = None,
        ttl: int = LEASE_TTL,
        every: float = EVERY,
    ) -> None:
        self.store = store
        self.claims = PresenceClaims(replica or secrets.token_hex(6))
        self.lease = EtcdLease(store.connection, ttl, what="shared host presence")
        self.every = every
        self.on_change: Callable[[], None] = lambda: None
        #: this replica's shared document now (None: nothing to share yet)
        self.document: Callable[[], bytes | None] = lambda: None
        #: called with the other replicas' documents (replica -> document) when they change
        self.on_documents: Callable[[Mapping[str, bytes]], None] = lambda documents: None
        self._document_written: bytes | None = None
        self._documents: dict[str, bytes] = {}
        #: what this replica would keep beyond its lease (None: nothing yet), and the reader
        #: of what was kept before it started
        self.kept: Callable[[], bytes | None] = lambda: None
        self.on_kept: Callable[[bytes], None] = lambda kept: None
        self._kept_written: bytes | None = None
        self._kept_read = False
        #: set once this replica's document was written and the others' read
        self.documents_shared = asyncio.Event()
        self._failing = False
        #: rounds done (each: a keep-alive, the changed claims written, the others' read)
        self.rounds = 0

    @property
    def ttl(self) -> int:
        return self.lease.ttl

    # -- what HostPresence uses --------------------------------------------------------------

    def publish(self, alive: Iterable[str]) -> None:
        """The hosts this replica judges alive now (written at the next round)."""
        self.claims.publish(alive)

    def alive_elsewhere(self) -> frozenset[str]:
        return self.claims.elsewhere

    # -- the rounds --------------------------------------------------------------------------

    async def run(self) -> None:
        """Rounds every ``every`` seconds until cancelled. A round that fails is logged (once
        until one succeeds) and the next one starts over on another member: whatever etcd
        or its stream does, this never ends the control plane (other replicas keep this
        one's last claims until its lease expires)."""
        try:
            while True:
                try:
                    await self.round()
                    if self._failing:
                        log.info("shared host presence: etcd answers again")
                    self._failing = False
                except Exception as e:  # a broken etcd stream, in any of its forms
                    if not self._failing:
                        log.warning(
                            "shared host presence: %s; other replicas keep this replica's "
                            "last claims until its lease expires (%d s)",
                            what_failed(e),
                            self.ttl,
                        )
                    self._failing = True
                    self.lease.drop_stream()
                    self.store.connection.next_member()
                await asyncio.sleep(self.every)
        finally:
            await self.lease.revoke(self.store.closed)

    async def round(self) -> None:
        """Keep the lease alive (or get one), write this replica's changed claims, read the
        others'."""
        conn = self.store.connection
        conn.check_open()
        keys = self.store.keys
        if await self.lease.keep():
            self.claims.lease_lost()
            self._document_written = None
        put, deleted = self.claims.pending()
        if put or deleted:
            ops = [
                rpc.RequestOp(
                    request_put=rpc.PutRequest(
                        key=keys.presence_key(host, self.claims.replica), lease=self.lease.id
                    )
                )
                for host in sorted(put)
            ]
            ops += [
                rpc.RequestOp(
                    request_delete_range=rpc.DeleteRangeRequest(
                        key=keys.presence_key(host, self.claims.replica)
                    )
                )
                for host in sorted(deleted)
            ]
            await conn.txn(rpc.TxnRequest(success=ops))
            self.claims.wrote(put, deleted)
        found = await conn.range(
            rpc.RangeRequest(key=keys.presence, range_end=prefix_end(keys.presence), keys_only=True)
        )
        parsed = (keys.presence_of(kv.key) for kv in found.kvs)
        if self.claims.read(p for p in parsed if p is not None):
            self.on_change()
        await self._share_documents()
        self.rounds += 1

    async def _share_documents(self) -> None:
        """Write this replica's document if it changed; read the others'."""
        conn, keys = self.store.connection, self.store.keys
        if not self._kept_read:
            found = await conn.range(rpc.RangeRequest(key=keys.kept))
            for kv in found.kvs:
                self.on_kept(bytes(kv.value))
            self._kept_read = True
        kept = self.kept()
        if kept is not None and kept != self._kept_written:
            put = rpc.PutRequest(key=keys.kept, value=kept)
            await conn.txn(rpc.TxnRequest(success=[rpc.RequestOp(request_put=put)]))
            self._kept_written = kept
        document = self.document()
        if document is not None and document != self._document_written:
            put = rpc.PutRequest(
                key=keys.replica_key(self.claims.replica), value=document, lease=self.lease.id
            )
            await conn.txn(rpc.TxnRequest(success=[rpc.RequestOp(request_put=put)]))
            self._document_written = document
        found = await conn.range(
            rpc.RangeRequest(key=keys.replicas, range_end=prefix_end(keys.replicas))
        )
        documents = {}
        for kv in found.kvs:
            replica = keys.replica_of(kv.key)
            if replica is not None and replica != self.claims.replica:
                documents[replica] = bytes(kv.value)
        if documents != self._documents:
            self._documents = documents
            self.on_documents(documents)
        if self._document_written is not None:
            self.documents_shared.set()
