"""A ``Store`` in etcd (v3 API), for control planes that run as several replicas.

Revisions are etcd's own: store revision = etcd revision - the store's base (the create
revision of its identity key, ``etcd_identity.py``), a constant, so an empty store is at 0 as
on every backend and a watch or listing at a store revision is etcd's at the matching one.
Other writes to the same etcd cluster (other prefixes) also advance etcd's revision: then a
store's revisions have gaps, which the Store contract allows.

``apply`` is one etcd transaction (``etcd_txn.py``): it reads the batch's keys, drops no-ops,
then commits the changes with a compare of every key's mod revision as read (and of the
identity key), and reads again if another writer came between (bounded). History: after a
write, the store compacts etcd to keep ``history`` revisions (in steps of ``history // 100``);
compaction is cluster-wide. Store revision C compacted is etcd's compaction at C + base: a
watch from C starts at etcd revision C + base + 1, above the compaction point (etcd drops a
delete made at exactly the compaction revision). ``watch`` is ``etcd_watch.py``.

While etcd does not answer (``etcd_health.py``), calls but ``watch`` fail at once.

Not yet (issue 15): leases for the liveness rule, leader election, several replicas.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aetcd.rpc as rpc  # type: ignore[import-untyped]

from gossamer.errors import ConfigError, ConflictError, StoreError
from gossamer.store.base import Change, Fence, StoredResource, StoreStatistics
from gossamer.store.etcd_client import EtcdConnection
from gossamer.store.etcd_health import StoreHealth
from gossamer.store.etcd_identity import EtcdIdentity, identity_key, settle
from gossamer.store.etcd_keys import EtcdKeys
from gossamer.store.etcd_txn import (
    add_fence,
    add_unchanged,
    check_fence,
    check_written,
    write_txn,
)
from gossamer.store.etcd_url import EtcdLocation, parse_etcd_url
from gossamer.store.etcd_watch import follow
from gossamer.store.memory import DEFAULT_HISTORY, check_watch_start, prepare_apply
from gossamer.types import Manifest, ResourceKey

log = logging.getLogger(__name__)

#: times ``apply`` reads again after other writers changed its keys, then gives up
MAX_ATTEMPTS = 20
#: an apply of more resources builds its transaction in a thread, off the event loop
BUILD_IN_THREAD = 1000
#: resources per page of a listing (all pages are read at the first page's revision)
PAGE = 1000


class EtcdStore:
    """Open with ``await EtcdStore.open("etcd://127.0.0.1:2379")``."""

    #: (replicas write to the same keys: see ``Store.exclusive``)
    exclusive = False

    def __init__(
        self,
        conn: EtcdConnection,
        identity: EtcdIdentity,
        history: int,
        *,
        revision: int,
        resources: int,
        compact_revision: int,
    ) -> None:
        """Use ``EtcdStore.open``."""
        self._conn = conn
        self._keys = EtcdKeys(conn.location.prefix)
        self._identity = identity
        self._history = history
        self._step = max(1, history // 100)
        self._revision = revision
        self._resources = resources
        self._compact_revision = compact_revision
        #: (revision, changes) of this replica's transactions still in history
        self._logged: deque[tuple[int, int]] = deque()
        self._closed = False
        self._watchers = 0
        #: running etcd watch calls, cancelled by ``close``
        self.calls: set[Any] = set()
        #: does etcd answer? (kept by an ``etcd_health.EtcdProbe``; while lost, reads and
        #: writes fail at once instead of after ``call_timeout``)
        self.health = StoreHealth(f"etcd at {conn.location}")

    @classmethod
    async def open(
        cls,
        location: str | EtcdLocation,
        *,
        history: int = DEFAULT_HISTORY,
        marker: Path | None = None,
        call_timeout: float = 10.0,
    ) -> EtcdStore:
        """Connect to the store at ``location`` (``etcd://h1:2379,h2:2379/prefix``),
        creating its identity if it is new.

        ``marker``: a file remembering the store's id (``DIR/gossamer.etcd.id``); opening
        refuses an etcd without that store (``etcd_identity.py``). ``call_timeout``: seconds
        a call may spend finding a member that answers.
        """
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ConfigError(
                f"store history must be an integer >= 1 (revisions of changes "
                f"kept for watchers), got {history!r}"
            )
        where = parse_etcd_url(location) if isinstance(location, str) else location
        conn = EtcdConnection(where, timeout=call_timeout)
        keys = EtcdKeys(where.prefix)
        try:
            identity = await settle(conn, keys.resources, keys.resources_end, marker)
            count = await conn.range(
                rpc.RangeRequest(key=keys.resources, range_end=keys.resources_end, count_only=True)
            )
            now = int(count.header.revision)
            compacted = await _compacted_at(conn, identity, now)
        except BaseException:
            await conn.close()
            raise
        return cls(
            conn,
            identity,
            history,
            revision=now - identity.base,
            resources=int(count.count),
            compact_revision=compacted,
        )

    async def __aenter__(self) -> EtcdStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def store_id(self) -> str:
        return self._identity.store_id

    @property
    def location(self) -> EtcdLocation:
        return self._conn.location

    @property
    def keys(self) -> EtcdKeys:
        return self._keys

    @property
    def base(self) -> int:
        return self._identity.base

    @property
    def connection(self) -> EtcdConnection:
        return self._conn

    @property
    def history(self) -> int:
        return self._history

    @property
    def compact_revision(self) -> int:
        return self._compact_revision

    @property
    def closed(self) -> bool:
        return self._closed

    async def revision(self) -> int:
        self.health.check()
        response = await self._conn.range(
            rpc.RangeRequest(key=identity_key(self._keys.prefix), keys_only=True)
        )
        self._check_identity(response.kvs)
        return self.seen(int(response.header.revision))

    async def apply(
        self,
        puts: Sequence[Manifest] = (),
        deletes: Sequence[ResourceKey] = (),
        *,
        fence: Fence | None = None,
        unchanged_since: int | None = None,
    ) -> int:
        prepared = prepare_apply(puts, deletes)
        self._conn.check_open()
        self.health.check()
        writes = [(self._keys.key(key), text.encode()) for key, text in prepared.puts]
        removes = [self._keys.key(key) for key in prepared.deletes]
        reads = [
            rpc.RequestOp(request_range=rpc.RangeRequest(key=key))
            for key in [key for key, _ in writes] + removes
        ]
        for _ in range(MAX_ATTEMPTS):
            read = await self._conn.txn(rpc.TxnRequest(success=reads))
            found: dict[bytes, Any] = {}
            for answer in read.responses:
                for kv in answer.response_range.kvs:
                    found[bytes(kv.key)] = kv
            args = (self._keys.prefix, self.base, writes, removes, found, self._keys.written)
            if len(reads) > BUILD_IN_THREAD:  # seconds of CPU at 100,000 resources
                request, created = await asyncio.to_thread(write_txn, *args)
            else:
                request, created = write_txn(*args)
            if not request.success:
                return self.seen(int(read.header.revision))
            if fence is not None:
                add_fence(request, self._keys.leader_key(fence.role), fence)
            if unchanged_since is not None:
                add_unchanged(request, self._keys.written, unchanged_since + self.base)
            response = await self._conn.txn(request)
            if response.succeeded:
                revision = self.seen(int(response.header.revision))
                self._resources += created
                self._logged.append((revision, len(request.success) - 1))  # (less `written`)
                await self._compact(revision)
                return revision
            self._check_identity(response.responses[0].response_range.kvs)
            answers = iter(response.responses[1:])
            if fence is not None:
                check_fence(fence, next(answers).response_range.kvs)
            if unchanged_since is not None:
                check_written(unchanged_since, self.base, next(answers).response_range.kvs)
        raise StoreError(
            f"gave up an apply after {MAX_ATTEMPTS} attempts: other writers to the etcd store "
            f"at {self.location} kept changing the same resources (nothing was written); "
            "try again"
        )

    async def get(self, key: ResourceKey) -> StoredResource | None:
        self.health.check()
        response = await self._conn.range(rpc.RangeRequest(key=self._keys.key(ResourceKey(*key))))
        self.seen(int(response.header.revision))
        return self._keys.stored(response.kvs[0], self.base) if response.kvs else None

    async def list(
        self, kind: str | None = None, namespace: str | None = None
    ) -> tuple[builtins.list[StoredResource], int]:
        self.health.check()
        start, end = self._keys.scope(kind, namespace)
        found: builtins.list[StoredResource] = []
        at = 0  # the first page's revision; later pages are read at it
        while True:
            page = await self._conn.range(
                rpc.RangeRequest(key=start, range_end=end, limit=PAGE, revision=at)
            )
            at = at or int(page.header.revision)
            found += [self._keys.stored(kv, self.base) for kv in page.kvs]
            if not page.more or not page.kvs:
                break
            start = bytes(page.kvs[-1].key) + b"\x00"
        if kind is None and namespace is None:
            self._resources = len(found)
        if namespace is not None:
            found = [r for r in found if r.key.namespace == namespace]
        found.sort(key=lambda r: r.key)
        return found, self.seen(at)

    def watch(self, from_revision: int) -> AsyncIterator[builtins.list[Change]]:
        """See ``Store.watch``: every transaction after ``from_revision``, resumed after a
        lost connection from the last one delivered (nothing missed or repeated). A start
        before what this replica compacted raises here; one before what etcd compacted
        (e.g. by another replica) raises ``ConflictError`` from the first step."""
        self._conn.check_open()
        check_watch_start(from_revision, self._revision, self._compact_revision, self._history)
        return self._watch(from_revision)

    async def _watch(self, cursor: int) -> AsyncIterator[builtins.list[Change]]:
        self._watchers += 1
        try:
            async for batch in follow(self, cursor):
                yield batch
        finally:
            self._watchers -= 1

    async def close(self) -> None:
        """Close the connection; running watches end, other calls raise ``StoreError``."""
        if self._closed:
            return
        self._closed = True
        for call in builtins.list(self.calls):
            call.cancel()
        await self._conn.close()

    def statistics(self) -> StoreStatistics:
        """This replica's view: ``resources`` as of its last full listing plus its own
        writes since; ``log_entries`` counts the changes it wrote that history keeps."""
        return StoreStatistics(
            backend="etcd",
            path=str(self.location),
            revision=self._revision,
            resources=self._resources,
            log_entries=sum(changes for _, changes in self._logged),
            compact_revision=self._compact_revision,
            history=self._history,
            watchers=self._watchers,
        )

    def seen(self, etcd_revision: int) -> int:
        """Note a revision etcd answered at; the store revision it is."""
        revision = etcd_revision - self.base
        self._revision = max(self._revision, revision)
        return revision

    async def _compact(self, revision: int) -> None:
        """Keep ``history`` revisions for watchers; etcd forgets the older ones."""
        target = revision - self._history
        if target < self._compact_revision + self._step:
            return
        try:
            await self._conn.call(
                "Compact", rpc.CompactionRequest(revision=target + self.base, physical=False)
            )
        except ConflictError:
            pass  # another replica compacted further already
        except StoreError as e:  # the write itself is committed: report, do not fail it
            log.warning("etcd compaction to store revision %d failed: %s", target, e)
            return
        self._compact_revision = max(self._compact_revision, target)
        while self._logged and self._logged[0][0] <= self._compact_revision:
            self._logged.popleft()

    def _check_identity(self, kvs: Any) -> None:
        if not kvs or int(kvs[0].create_revision) != self.base:
            raise StoreError(
                f"the etcd store at {self.location} lost its identity key "
                f"{identity_key(self._keys.prefix).decode()} while open (etcd emptied, "
                "restored or replaced): refusing to write; restart the control plane to "
                "check the store (docs/store.md)"
            )


async def _compacted_at(conn: EtcdConnection, identity: EtcdIdentity, now: int) -> int:
    """The store revision up to which etcd has compacted the store's history (0: none)."""
    if now <= identity.base:
        return 0
    key = identity_key(conn.location.prefix)
    try:
        await conn.range(rpc.RangeRequest(key=key, revision=identity.base, keys_only=True))
    except ConflictError:
        # Compacted past the store's start; etcd's compaction point is not served by
        # any call but a watch from before it: binary-search it with cheap ranges.
        low, high = identity.base, now  # low compacted, high readable
        while high - low > 1:
            middle = (low + high) // 2
            try:
                await conn.range(rpc.RangeRequest(key=key, revision=middle, keys_only=True))
                high = middle
            except ConflictError:
                low = middle
        return high - identity.base
    return 0
