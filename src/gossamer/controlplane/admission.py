"""What an apply must pass before it is stored: who may change what, what it actually
changes, and whether the mesh it makes is valid (``Admission``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from gossamer.controlplane.service import Diff
from gossamer.errors import ConflictError, FieldError, GossamerError, ValidationError
from gossamer.model import check_changes, check_references
from gossamer.model.base import Resource
from gossamer.model.catalog import INTERNAL_KINDS
from gossamer.model.snapshot import ModelSnapshot
from gossamer.model.workload import Workload
from gossamer.types import OWNER_LABEL, SYSTEM_NAMESPACE, ResourceKey

log = logging.getLogger(__name__)

#: checks a prospective model beyond references; returns the errors (empty: fine)
Validator = Callable[[ModelSnapshot], Awaitable[list[FieldError]]]

#: Workload fields that references, addresses and ports do not depend on
_STATUS_FIELDS = frozenset({"health", "weight", "zone"})


def authorize(
    model: ModelSnapshot,
    puts: Sequence[Resource],
    deletes: Sequence[ResourceKey],
    owner: str | None,
    internal: bool,
) -> None:
    """Refuse internal kinds from users, forged owner labels, and changes to resources an
    agent (or a user) owns by anyone else. ``owner`` is the agent id, None for a user."""
    errors = [
        FieldError(
            f"{r.kind} is kept by the control plane itself and cannot be applied",
            "kind",
            str(r.key),
        )
        for r in puts
        if r.kind in INTERNAL_KINDS and not internal
    ]
    errors += [
        FieldError(
            f"namespace {SYSTEM_NAMESPACE} holds the control plane's own records and takes "
            "nothing from users; choose another namespace",
            "metadata.namespace",
            str(key),
        )
        for key in [*(r.key for r in puts), *deletes]
        # (its own kinds there are refused above, or owned: their errors say more)
        if key.namespace == SYSTEM_NAMESPACE and key.kind not in INTERNAL_KINDS and not internal
    ]
    errors += [
        FieldError(
            f"the label {OWNER_LABEL} is set by the control plane for resources an "
            "agent registers; remove it",
            f"metadata.labels.{OWNER_LABEL}",
            str(r.key),
        )
        for r in puts
        if r.metadata.labels.get(OWNER_LABEL) != owner
    ]
    if errors:
        raise ValidationError(errors)
    for key in [*(r.key for r in puts), *deletes]:
        existing = model.resources.get(key)
        held_by = existing.metadata.labels.get(OWNER_LABEL) if existing else None
        if existing is not None and held_by != owner:
            raise ConflictError(_owned_elsewhere(key, held_by))


def _owned_elsewhere(key: ResourceKey, agent: str | None) -> str:
    """Who holds ``key`` and how to hand it over: an agent's resource changes on its host
    (or goes with the agent); a user's is deleted by a user before an agent may take it."""
    if agent:
        return (
            f"{key} was registered by agent {agent}; change it in that agent's workloads "
            f"file, or `gossamer agents revoke {agent}` (deletes its workloads)"
        )
    return (
        f"{key} was registered by a user (gossamer apply); to let an agent register it, "
        f"`gossamer delete {key.kind.lower()} {key.name} -n {key.namespace}` first (or give "
        "the agent's workload another name)"
    )


def diff_against(model: ModelSnapshot, resources: Sequence[Resource]) -> Diff:
    """Created, updated and unchanged, compared with the model (which mirrors the store:
    the control plane is its only writer)."""
    diff = Diff()
    for r in resources:
        existing = model.resources.get(r.key)
        if existing is None:
            diff.created.append(r.key)
        elif existing == r:
            diff.unchanged.append(r.key)
        else:
            diff.updated.append(r.key)
    return diff


def status_only(old: Resource | None, new: Resource) -> bool:
    """Whether ``new`` changes only status-like fields of the existing workload ``old``."""
    if not isinstance(old, Workload) or not isinstance(new, Workload):
        return False
    keep = set(type(new.spec).model_fields) - _STATUS_FIELDS
    return all(getattr(old.spec, f) == getattr(new.spec, f) for f in keep)


class CheckedModels:
    """Which model is known consistent (a reference check passed on it, or it was made
    from such a model by status-only changes), so that an apply on it checks only what its
    changes can make inconsistent (``check_changes``). The model read at start is checked
    in the background (``check_loaded``); one made by another replica's writes is checked
    whole at the next apply."""

    def __init__(self) -> None:
        self._consistent: ModelSnapshot | None = None
        #: the last snapshot an apply validated, to be stored
        self._vouched: ModelSnapshot | None = None

    def errors(
        self,
        before: ModelSnapshot,
        after: ModelSnapshot,
        puts: Sequence[Resource],
        deletes: Sequence[ResourceKey],
    ) -> list[FieldError]:
        """The reference errors of ``after``, made from ``before`` by the changes (~210 ms
        at 10k services when all are checked: call off the event loop)."""
        found = check_changes(after, puts, deletes) if before is self._consistent else None
        return check_references(after) if found is None else found

    def vouch(self, after: ModelSnapshot, before: ModelSnapshot | None = None) -> None:
        """``after`` passed its checks; or, with ``before``, it was made from ``before``
        by status-only changes (consistent if ``before`` is)."""
        ok = before is None or before is self._consistent
        self._vouched = after if ok else None

    async def check_loaded(self, model: ModelSnapshot) -> None:
        """Check the model read from the store at start, off the event loop: consistent, it
        is known so (unless an apply replaced it meanwhile); if not, say what is wrong
        (applies are then checked whole until it is fixed)."""
        errors = await asyncio.to_thread(check_references, model)
        if not errors:
            if self._consistent is None:  # (else an apply's checked model is newer)
                self._consistent = model
            return
        log.warning(
            "the stored mesh is inconsistent, %d error(s) (every apply is checked whole "
            "until they are fixed): %s",
            len(errors),
            "; ".join(str(e) for e in errors[:5]),
        )

    def stored(self, after: ModelSnapshot, model: ModelSnapshot) -> None:
        """``after`` was stored, and ``model`` (its copy at the store's revision) is the
        model now."""
        self._consistent = model if after is self._vouched else None


class Admission:
    """Checks the model an apply would make: its references (only what the changes can
    break, on a model known consistent: ``CheckedModels``) and the validators added."""

    def __init__(self, checked: CheckedModels) -> None:
        self.checked = checked
        self._validators: list[tuple[frozenset[str], Validator]] = []

    def add_validator(self, kinds: set[str], validate: Validator) -> None:
        """Also check applies touching ``kinds`` with ``validate(new model) -> errors``."""
        self._validators.append((frozenset(kinds), validate))

    async def check(
        self, before: ModelSnapshot | None, puts: Sequence[Resource], deletes: Sequence[ResourceKey]
    ) -> ModelSnapshot:
        """The model ``before`` with the changes, if valid (else ``ValidationError``)."""
        if before is None:
            raise GossamerError("the control plane is still loading; try again in a moment")
        after = before.with_changes(puts, deletes)
        if not deletes and all(status_only(before.resources.get(r.key), r) for r in puts):
            # health, weight or labels of existing workloads: nothing to recheck
            self.checked.vouch(after, before)
            return after
        # (off the loop: a whole check takes ~20 ms at 1k services, ~210 ms at 10k, every
        # ADS stream stalled)
        errors = await asyncio.to_thread(self.checked.errors, before, after, puts, deletes)
        touched = {r.kind for r in puts} | {k.kind for k in deletes}
        for kinds, validate in self._validators:
            if not errors and touched & kinds:
                errors += await validate(after)
        if errors:
            raise ValidationError(errors)
        self.checked.vouch(after)
        return after
