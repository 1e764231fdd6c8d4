"""An in-memory store with the exact semantics of the durable backends, minus durability.

Meant for tests (it is what ``gossamer.testing`` hands out) and for demos that need no disk.
It also holds the input checks every backend shares: how a manifest's key is derived, how
manifests are compared (canonical JSON) and how a batch of puts and deletes is validated.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, NamedTuple

from gossamer.errors import (
    ConfigError,
    ConflictError,
    FieldError,
    StaleModelError,
    StoreError,
    ValidationError,
)
from gossamer.store.base import Change, Fence, StoredResource, StoreStatistics
from gossamer.types import DEFAULT_NAMESPACE, Manifest, ResourceKey

#: How many revisions of changes a store keeps for watchers that start in the past.
DEFAULT_HISTORY = 10_000


# --- input checks shared by every backend -------------------------------------------------


def canonical_json(manifest: Manifest) -> str:
    """The form manifests are stored and compared in: sorted keys, no whitespace, no NaN."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), allow_nan=False)


def manifest_key(manifest: Manifest) -> ResourceKey:
    """``ResourceKey(kind, metadata.namespace or "default", metadata.name)``.

    Raises ``ValidationError`` naming the field if the manifest has no usable key.
    """
    errors = _key_errors(manifest, "")
    if errors:
        raise ValidationError(errors)
    metadata = manifest["metadata"]
    return ResourceKey(
        manifest["kind"], metadata.get("namespace", DEFAULT_NAMESPACE), metadata["name"]
    )


def _key_errors(manifest: Any, where: str) -> list[FieldError]:
    if not isinstance(manifest, dict):
        return [
            FieldError(
                f"must be a mapping (apiVersion, kind, metadata, spec), "
                f"got {type(manifest).__name__}",
                resource=where,
            )
        ]
    errors: list[FieldError] = []
    kind = manifest.get("kind")
    if not isinstance(kind, str) or not kind:
        errors.append(FieldError("required: a non-empty string", "kind", where))
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict):
        errors.append(FieldError("required: a mapping with at least 'name'", "metadata", where))
        return errors
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        errors.append(FieldError("required: a non-empty string", "metadata.name", where))
    namespace = metadata.get("namespace", DEFAULT_NAMESPACE)
    if not isinstance(namespace, str) or not namespace:
        errors.append(
            FieldError(
                f"must be a non-empty string (or left out for {DEFAULT_NAMESPACE!r})",
                "metadata.namespace",
                where,
            )
        )
    return errors


@dataclass(frozen=True, slots=True)
class PreparedApply:
    """A checked batch: each put as (key, canonical JSON), each delete as a key."""

    puts: tuple[tuple[ResourceKey, str], ...]
    deletes: tuple[ResourceKey, ...]


def prepare_apply(puts: Sequence[Manifest], deletes: Sequence[ResourceKey]) -> PreparedApply:
    """Check a batch before anything is written; raise one ``ValidationError`` listing all.

    A key may appear only once per batch (as a put or a delete): two writes to one
    resource in one transaction are ambiguous, so they are rejected rather than ordered.
    """
    errors: list[FieldError] = []
    seen: set[ResourceKey] = set()
    prepared_puts: list[tuple[ResourceKey, str]] = []
    prepared_deletes: list[ResourceKey] = []

    def once(key: ResourceKey, where: str) -> None:
        if key in seen:
            errors.append(
                FieldError(
                    "the same resource appears more than once in one apply; "
                    "keep one put or one delete per resource",
                    resource=f"{where} ({key})",
                )
            )
        seen.add(key)

    for i, manifest in enumerate(puts):
        where = f"puts[{i}]"
        key_errors = _key_errors(manifest, where)
        if key_errors:
            errors.extend(key_errors)
            continue
        key = manifest_key(manifest)
        try:
            text = canonical_json(manifest)
        except (TypeError, ValueError) as e:
            errors.append(
                FieldError(
                    f"cannot be stored as JSON ({e}); use only mappings, "
                    "lists, strings, finite numbers, booleans and null",
                    resource=f"{where} ({key})",
                )
            )
            continue
        once(key, where)
        prepared_puts.append((key, text))
    for i, raw in enumerate(deletes):
        where = f"deletes[{i}]"
        if (
            not isinstance(raw, tuple)
            or len(raw) != 3
            or not all(isinstance(part, str) and part for part in raw)
        ):
            errors.append(
                FieldError(
                    "must be a ResourceKey(kind, namespace, name) of "
                    f"non-empty strings, got {raw!r}",
                    resource=where,
                )
            )
            continue
        key = ResourceKey(*raw)
        once(key, where)
        prepared_deletes.append(key)
    if errors:
        raise ValidationError(errors)
    return PreparedApply(tuple(prepared_puts), tuple(prepared_deletes))


def check_watch_start(
    from_revision: int, revision: int, compact_revision: int, history: int
) -> None:
    """Raise if a watch cannot replay every transaction after ``from_revision``."""
    if isinstance(from_revision, bool) or not isinstance(from_revision, int) or from_revision < 0:
        raise ValidationError(
            [
                FieldError(
                    f"must be an integer >= 0 (0 replays everything kept), got {from_revision!r}",
                    "from_revision",
                )
            ]
        )
    if from_revision > revision:
        raise ConflictError(
            f"cannot watch from revision {from_revision}: the store is only at revision "
            f"{revision}; the revision came from another or a reset store; list again and "
            "watch from the listing's revision"
        )
    check_not_compacted(from_revision, compact_revision, history)


def check_not_compacted(after: int, compact_revision: int, history: int) -> None:
    if after < compact_revision:
        raise ConflictError(
            f"cannot replay changes after revision {after}: the store keeps only the last "
            f"{history} revisions (changes up to revision {compact_revision} were compacted); "
            "list again and watch from the listing's revision"
        )


def check_unchanged(since: int | None, newest: int) -> None:
    """An apply's ``unchanged_since`` precondition (``Store.apply``): ``StaleModelError``
    if resources were written after revision ``since``, the newest such write at
    ``newest``."""
    if since is not None and newest > since:
        raise StaleModelError(
            f"the store has changes after revision {since} (up to {newest}) that the writer "
            "had not read: nothing was written; read them and check the change again",
            newest,
        )


# --- the in-memory store ------------------------------------------------------------------


class _Logged(NamedTuple):
    type: Literal["put", "delete"]
    key: ResourceKey
    text: str
    revision: int
    create_revision: int


class _Stored(NamedTuple):
    text: str
    revision: int
    create_revision: int


class MemoryStore:
    """A ``Store`` kept in a dict. Same validation, revisions, no-op rules, history and
    watch behaviour as ``SQLiteStore``; manifests are copied in and out, so callers can
    mutate what they pass or get without touching the store."""

    #: (several planes of one process may share it: see ``Store.exclusive``)
    exclusive = False

    def __init__(self, *, history: int = DEFAULT_HISTORY) -> None:
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ConfigError(
                f"store history must be an integer >= 1 (revisions of changes "
                f"kept for watchers), got {history!r}"
            )
        self._history = history
        self._resources: dict[ResourceKey, _Stored] = {}
        self._log: dict[int, tuple[_Logged, ...]] = {}
        self._log_entries = 0
        self._revision = 0
        self._compact_revision = 0
        self._closed = False
        self._watchers = 0
        self._changed = asyncio.Event()

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def revision(self) -> int:
        await self._checkpoint()
        return self._revision

    async def apply(
        self,
        puts: Sequence[Manifest] = (),
        deletes: Sequence[ResourceKey] = (),
        *,
        fence: Fence | None = None,  # one process owns this store: its one leader
        unchanged_since: int | None = None,
    ) -> int:
        prepared = prepare_apply(puts, deletes)
        # Yield once, like a backend doing I/O would, so tests see realistic interleavings.
        await self._checkpoint()
        check_unchanged(unchanged_since, self._revision)
        new_revision = self._revision + 1
        logged: list[_Logged] = []
        for key, text in prepared.puts:
            old = self._resources.get(key)
            if old is not None and old.text == text:
                continue
            created = new_revision if old is None else old.create_revision
            logged.append(_Logged("put", key, text, new_revision, created))
        for key in prepared.deletes:
            old = self._resources.get(key)
            if old is not None:
                logged.append(_Logged("delete", key, old.text, old.revision, old.create_revision))
        if not logged:
            return self._revision
        # Nothing below can fail: the transaction is applied all at once.
        for entry in logged:
            if entry.type == "put":
                self._resources[entry.key] = _Stored(
                    entry.text, entry.revision, entry.create_revision
                )
            else:
                del self._resources[entry.key]
        self._log[new_revision] = tuple(logged)
        self._log_entries += len(logged)
        self._revision = new_revision
        while self._compact_revision < new_revision - self._history:
            self._compact_revision += 1
            self._log_entries -= len(self._log.pop(self._compact_revision))
        self._wake_watchers()
        return new_revision

    async def get(self, key: ResourceKey) -> StoredResource | None:
        await self._checkpoint()
        stored = self._resources.get(key)
        return None if stored is None else _resource(key, stored)

    async def list(
        self, kind: str | None = None, namespace: str | None = None
    ) -> tuple[list[StoredResource], int]:
        await self._checkpoint()
        found = [
            _resource(key, stored)
            for key, stored in sorted(self._resources.items())
            if (kind is None or key.kind == kind)
            and (namespace is None or key.namespace == namespace)
        ]
        return found, self._revision

    def watch(self, from_revision: int) -> AsyncIterator[builtins.list[Change]]:
        """See ``Store.watch``. A bad or compacted ``from_revision`` raises here, at the
        call; a watcher that falls more than ``history`` revisions behind gets
        ``ConflictError`` from its next step. The watch ends when the store is closed."""
        self._check_open()
        check_watch_start(from_revision, self._revision, self._compact_revision, self._history)
        return self._watch(from_revision)

    async def _watch(self, cursor: int) -> AsyncIterator[builtins.list[Change]]:
        self._watchers += 1
        try:
            while not self._closed:
                if cursor < self._revision:
                    check_not_compacted(cursor, self._compact_revision, self._history)
                    cursor += 1
                    yield [_change(entry, cursor) for entry in self._log[cursor]]
                    continue
                await self._changed.wait()
        finally:
            self._watchers -= 1

    async def close(self) -> None:
        self._closed = True
        self._wake_watchers()

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            backend="memory",
            revision=self._revision,
            resources=len(self._resources),
            log_entries=self._log_entries,
            compact_revision=self._compact_revision,
            history=self._history,
            watchers=self._watchers,
        )

    def _wake_watchers(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the in-memory store is closed; create a new MemoryStore")

    async def _checkpoint(self) -> None:
        self._check_open()
        await asyncio.sleep(0)
        self._check_open()


def _resource(key: ResourceKey, stored: _Stored) -> StoredResource:
    return StoredResource(key, json.loads(stored.text), stored.revision, stored.create_revision)


def _change(entry: _Logged, revision: int) -> Change:
    resource = StoredResource(
        entry.key, json.loads(entry.text), entry.revision, entry.create_revision
    )
    return Change(entry.type, entry.key, resource, revision)
