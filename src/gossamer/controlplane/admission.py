"""What an apply must pass before it is validated and stored: who may change what, and what
it actually changes."""

from __future__ import annotations

from collections.abc import Sequence

from gossamer.controlplane.service import Diff
from gossamer.errors import ConflictError, FieldError, ValidationError
from gossamer.model.base import Resource
from gossamer.model.catalog import INTERNAL_KINDS
from gossamer.model.snapshot import ModelSnapshot
from gossamer.model.workload import Workload
from gossamer.types import OWNER_LABEL, ResourceKey

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
            who = f"agent {held_by}" if held_by else "a user (gossamer apply)"
            raise ConflictError(
                f"{key} was registered by {who}; change it there, or revoke that agent"
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
