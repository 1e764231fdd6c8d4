"""The catalog of resource kinds (name -> pydantic model, public or internal) and manifest
parsing."""

from __future__ import annotations

from typing import Any

import pydantic

from gossamer.errors import FieldError, ValidationError, did_you_mean, field_errors
from gossamer.model.access_policy import AccessCommand, AccessPolicy
from gossamer.model.base import Resource
from gossamer.model.external_service import ExternalService
from gossamer.model.gateway import Gateway
from gossamer.model.internal import AddressSeed, Agent, FetchedJwks, JoinToken, OperatorToken
from gossamer.model.mesh import Mesh
from gossamer.model.route import Route
from gossamer.model.service import Service
from gossamer.model.text import replace_surrogates
from gossamer.model.traffic_policy import TrafficPolicy
from gossamer.model.workload import Workload
from gossamer.types import Manifest

#: every kind, public and internal, by name (fixed at import: no runtime registration)
KINDS: dict[str, type[Resource]] = {
    cls.__name__: cls
    for cls in (
        Mesh,
        Service,
        Workload,
        Gateway,
        Route,
        TrafficPolicy,
        ExternalService,
        AccessPolicy,
        AccessCommand,
        JoinToken,
        Agent,
        OperatorToken,
        FetchedJwks,
        AddressSeed,
    )
}

#: kinds the control plane keeps for itself (tokens, agents): never applied by users,
#: never offered as valid kinds
INTERNAL_KINDS: frozenset[str] = frozenset(
    {"JoinToken", "Agent", "AccessCommand", "OperatorToken", "FetchedJwks", "AddressSeed"}
)

#: the kinds users apply, get and delete
PUBLIC_KINDS: dict[str, type[Resource]] = {
    k: v for k, v in KINDS.items() if k not in INTERNAL_KINDS
}


def describe(manifest: Any) -> str:
    """``Kind namespace/name`` of a manifest as given (``?`` for what it lacks)."""
    if not isinstance(manifest, dict):
        return ""
    meta = manifest.get("metadata") if isinstance(manifest.get("metadata"), dict) else {}
    name = meta.get("name", "?") if meta else "?"
    ns = meta.get("namespace", "default") if meta else "default"
    # shown in every error of the resource: a lone surrogate here would fail to print
    return replace_surrogates(f"{manifest.get('kind', '?')} {ns}/{name}")


def parse_manifest(manifest: Any, source: str = "") -> Resource:
    """Validate one manifest into its model; raise ValidationError naming every bad field."""
    what = describe(manifest)
    if not isinstance(manifest, dict):
        raise ValidationError(
            [
                FieldError(
                    "a resource must be a mapping with apiVersion, kind, metadata, spec",
                    source=source,
                )
            ]
        )
    kind = manifest.get("kind")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        valid = ", ".join(sorted(PUBLIC_KINDS))
        hint = did_you_mean(kind, sorted(PUBLIC_KINDS)) if isinstance(kind, str) else ""
        raise ValidationError(
            [
                FieldError(
                    f"unknown kind {kind!r}:{hint} valid kinds are {valid}", "kind", what, source
                )
            ]
        )
    try:
        return cls.model_validate(manifest)
    except pydantic.ValidationError as e:
        raise ValidationError(field_errors(e, resource=what, source=source, model=cls)) from None


def to_manifests(resources: list[Resource]) -> list[Manifest]:
    return [r.to_manifest() for r in resources]
