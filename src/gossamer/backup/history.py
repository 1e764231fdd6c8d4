"""What the store held at an earlier revision, and the change that brings it back.

Every backend answers it the same way, through ``Store.watch``: the changes it keeps
(``history`` revisions, 10,000 by default) are replayed from the oldest one, and each
resource's state at revision R is its last change at or before R; failing that, the value
its first change after R replaced (a delete carries it; a put that created the resource
says it was absent). The one thing the log cannot answer is a resource updated after R
whose earlier value was written before the oldest change kept: then the rollback is
refused, naming it.

A rollback touches only what users own: public kinds outside ``gossamer-system`` with no
agent's owner label, at R and now. Workloads agents registered, agents, join tokens,
operator tokens and the NGAC journal (``AccessCommand``) are never part of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from gossamer.errors import ConflictError, FieldError, ValidationError
from gossamer.model.catalog import PUBLIC_KINDS
from gossamer.store.base import Change, Store
from gossamer.types import OWNER_LABEL, SYSTEM_NAMESPACE, Manifest, ResourceKey

#: a watch that yields nothing for this long has delivered everything up to now (etcd's
#: revisions have gaps: the newest revision need not be one of the store's changes)
IDLE_S = 2.0


@dataclass(frozen=True)
class Skipped:
    key: ResourceKey
    reason: str


@dataclass
class RollbackPlan:
    """The change that makes users' resources what they were at ``to_revision``."""

    to_revision: int
    #: the store's revision the plan was computed against
    from_revision: int
    #: (key, manifest now or None, manifest at to_revision or None)
    created: list[tuple[ResourceKey, Manifest]] = field(default_factory=list)
    updated: list[tuple[ResourceKey, Manifest, Manifest]] = field(default_factory=list)
    deleted: list[tuple[ResourceKey, Manifest]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.created or self.updated or self.deleted)


def user_owned(key: ResourceKey, manifest: Manifest | None) -> bool:
    """Whether a rollback may touch ``key`` in this state (None: absent, which it may)."""
    if key.kind not in PUBLIC_KINDS or key.namespace == SYSTEM_NAMESPACE:
        return False
    return _owner(manifest) is None


def _owner(manifest: Manifest | None) -> str | None:
    labels = ((manifest or {}).get("metadata") or {}).get("labels") or {}
    owner = labels.get(OWNER_LABEL)
    return str(owner) if owner is not None else None


def _too_old(revision: int, oldest: int, history: int) -> ValidationError:
    return ValidationError(
        [
            FieldError(
                f"revision {revision} is older than the history this store keeps (the last "
                f"{history} revisions): the oldest revision to roll back to is {oldest}",
                "toRevision",
            )
        ]
    )


async def _changes(store: Store, start: int, upto: int) -> list[Change]:
    """Every change after ``start`` up to ``upto``, oldest first."""
    found: list[Change] = []
    if upto <= start:
        return found
    batches = store.watch(start)
    try:
        while True:
            try:
                async with asyncio.timeout(IDLE_S):
                    batch = await anext(batches)
            except TimeoutError:
                return found  # nothing more up to now (a gap at ``upto``)
            if not batch or batch[0].revision > upto:
                return found
            found.extend(batch)
            if batch[0].revision >= upto:
                return found
    finally:
        with contextlib.suppress(Exception):
            await batches.aclose()  # type: ignore[attr-defined]


async def plan_rollback(
    store: Store, to_revision: int, current: dict[ResourceKey, Manifest], revision: int
) -> RollbackPlan:
    """The plan back to ``to_revision`` from ``current`` (the store's state at
    ``revision``). ``ValidationError`` naming ``toRevision`` if it is out of the history
    kept or in the future, or if some user's resource's state then is not in it."""
    stats = store.statistics()
    oldest = stats.compact_revision
    if isinstance(to_revision, bool) or not isinstance(to_revision, int) or to_revision < 0:
        raise ValidationError([FieldError("must be an integer >= 0", "toRevision")])
    if to_revision > revision:
        raise ValidationError(
            [
                FieldError(
                    f"revision {to_revision} is in the future: the store is at revision {revision}",
                    "toRevision",
                )
            ]
        )
    if to_revision < oldest:
        raise _too_old(to_revision, oldest, stats.history)
    plan = RollbackPlan(to_revision, revision)
    if to_revision == revision:
        return plan
    try:
        changes = await _changes(store, oldest, revision)
    except ConflictError:  # compacted meanwhile (etcd: by another replica)
        raise _too_old(to_revision, store.statistics().compact_revision, stats.history) from None
    before: dict[ResourceKey, Change] = {}  # last change at or before to_revision
    after: dict[ResourceKey, Change] = {}  # first change after it
    for c in changes:
        if c.revision <= to_revision:
            before[c.key] = c
        else:
            after.setdefault(c.key, c)
    for key, first in sorted(after.items()):
        now = current.get(key)
        then: Manifest | None
        if key in before:
            last = before[key]
            then = last.resource.manifest if last.type == "put" else None
        elif first.type == "delete":
            then = first.resource.manifest
        elif first.resource.create_revision == first.revision:
            then = None
        else:
            if not user_owned(key, now):
                continue
            raise ValidationError(
                [
                    FieldError(
                        f"cannot roll back to revision {to_revision}: {key} was changed at "
                        f"revision {first.revision}, and what it held before was written "
                        f"before revision {oldest}, the oldest change this store keeps; roll "
                        f"back to revision {first.revision} or later, or apply {key} as it "
                        "should be",
                        "toRevision",
                    )
                ]
            )
        _place(plan, key, now, then)
    return plan


def _place(
    plan: RollbackPlan, key: ResourceKey, now: Manifest | None, then: Manifest | None
) -> None:
    if now == then:
        return
    if not (user_owned(key, now) and user_owned(key, then)):
        if key.kind in PUBLIC_KINDS and key.namespace != SYSTEM_NAMESPACE:
            agent = _owner(now) or _owner(then)
            plan.skipped.append(
                Skipped(
                    key, f"registered by agent {agent}: agents' resources are never rolled back"
                )
            )
        return
    if now is None and then is not None:
        plan.created.append((key, then))
    elif then is None and now is not None:
        plan.deleted.append((key, now))
    elif now is not None and then is not None:
        plan.updated.append((key, now, then))
