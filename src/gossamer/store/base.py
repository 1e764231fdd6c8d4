"""The store interface. Backends: SQLite (embedded default), in-memory (tests), etcd (later).

The store is model-agnostic: it keeps manifests (plain dicts) that the model layer has
already validated. Every write is one transaction that gets one new revision; a write
returns only once it is durable. Re-applying an identical manifest changes nothing and
does not bump the revision.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from gossamer.types import Manifest, ResourceKey


@dataclass(frozen=True, slots=True)
class StoredResource:
    key: ResourceKey
    manifest: Manifest
    #: revision of the transaction that last changed this resource
    revision: int
    #: revision of the transaction that created it (stable across updates)
    create_revision: int


@dataclass(frozen=True, slots=True)
class Change:
    type: Literal["put", "delete"]
    key: ResourceKey
    #: the resource after a put; the last stored value for a delete
    resource: StoredResource
    revision: int


@dataclass(frozen=True, slots=True)
class Fence:
    """What a singleton's write carries to prove this replica still leads ``role``: a
    backend shared by replicas (etcd) writes only while the role's leader key still has
    ``token`` as its create revision, else raises ``FencedError`` and writes nothing. A
    backend one process owns (SQLite, memory) has one leader and nothing to compare."""

    role: str
    token: int


#: one transaction's changes, as ``watch`` yields them
ChangeBatch = list[Change]


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """What a store holds and keeps for watchers; every backend fills the same shape."""

    #: which backend: ``"sqlite"``, ``"memory"`` (``"fake"``: ``FakeControlPlane``)
    backend: str
    revision: int
    resources: int
    #: changes (not transactions) kept for watchers
    log_entries: int
    #: watchers can start from this revision or later
    compact_revision: int
    #: how many revisions of changes are kept for watchers
    history: int
    #: running ``watch`` iterators
    watchers: int
    #: the file of a backend that has one (SQLite), else None
    path: str | None = None


class Store(Protocol):
    #: True when this process is the store's only writer (SQLite's exclusive lock): a
    #: write's revision then follows every change the process wrote before it and nothing
    #: else. False when others may write meanwhile (etcd's replicas, or several planes on
    #: one ``MemoryStore``): a writer learns what came before its write from the watch.
    exclusive: bool

    async def revision(self) -> int:
        """The revision of the newest committed transaction (0 for an empty store)."""
        ...

    async def apply(
        self,
        puts: Sequence[Manifest] = (),
        deletes: Sequence[ResourceKey] = (),
        *,
        fence: Fence | None = None,
        unchanged_since: int | None = None,
    ) -> int:
        """Write all puts and deletes in one durable transaction; return its revision.
        With a ``fence``, only while it holds (``FencedError`` otherwise). With
        ``unchanged_since``, only if no resource was written after that revision
        (``StaleModelError`` otherwise, naming the newest such write): a writer that
        checked the changes on what it read at that revision knows they still hold.

        Puts identical to what is stored and deletes of missing keys are dropped; if nothing
        is left, nothing is written and the current revision is returned. Raises
        ``StoreError`` if the transaction could not be made durable (nothing was applied).
        """
        ...

    async def get(self, key: ResourceKey) -> StoredResource | None: ...

    async def list(
        self, kind: str | None = None, namespace: str | None = None
    ) -> tuple[list[StoredResource], int]:
        """A consistent listing and the revision it was read at."""
        ...

    def watch(self, from_revision: int) -> AsyncIterator[ChangeBatch]:
        """Yield every transaction after ``from_revision`` as a batch, oldest first, forever.

        A watcher that falls behind never misses a change. If ``from_revision`` is older than
        what the backend keeps, raises ``ConflictError`` (re-list and watch again).
        """
        ...

    def statistics(self) -> StoreStatistics:
        """Counters for introspection (``/v1/statistics``); cheap, never blocks."""
        ...

    async def close(self) -> None: ...
