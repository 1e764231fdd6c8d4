"""What an operator token is created with, checked before anything is made: a namespaced
token's namespaces and rights, and a decision point's token being nothing else
(``registry.operators``). Each refusal names the field and what would be valid."""

from __future__ import annotations

from collections.abc import Sequence

import pydantic
from pydantic import TypeAdapter

from gossamer.authz.rights import API_READ, API_RIGHTS
from gossamer.errors import FieldError, ValidationError, field_errors
from gossamer.model.base import Name
from gossamer.registry.record_manifests import REGISTRY_NAMESPACE

_NAME: TypeAdapter[str] = TypeAdapter(Name)


def decision_point_alone(
    read_only: bool, namespaces: Sequence[str], rights: Sequence[str] | None
) -> None:
    """A decision point's token is its own kind: ``ValidationError`` naming what else was
    asked for."""
    given = [
        f
        for f, on in (("readOnly", read_only), ("namespaces", namespaces), ("rights", rights))
        if on
    ]
    if given:
        raise ValidationError(
            [
                FieldError(
                    "a decision point's token may read the graph and report decisions, nothing "
                    "else: drop decisionPoint, or this field",
                    f,
                )
                for f in given
            ]
        )


def token_scope(
    namespaces: Sequence[str], rights: Sequence[str] | None, read_only: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A namespaced token's namespaces and rights, checked (``ValidationError`` naming the
    field and what is valid); both empty for a token of the whole API."""
    errors: list[FieldError] = []
    for i, ns in enumerate(namespaces):
        try:
            _NAME.validate_python(ns)
        except pydantic.ValidationError as e:
            errors += field_errors(e, root=("namespaces", i))
        if ns == REGISTRY_NAMESPACE:  # the control plane's own records (token hashes)
            message = f"{ns!r} is the control plane's own namespace: name a namespace of the mesh"
            errors.append(FieldError(message, f"namespaces[{i}]"))
    if rights is not None and not namespaces:
        message = "rights go with namespaces (a token of the whole API is an operator or read-only)"
        errors.append(FieldError(message, "rights"))
    wanted = tuple(dict.fromkeys(rights if rights is not None else API_RIGHTS))
    if read_only and rights is None:
        wanted = (API_READ,)
    for i, right in enumerate(wanted):
        if right not in API_RIGHTS:
            valid = ", ".join(API_RIGHTS)
            errors.append(FieldError(f"unknown right {right!r}: valid are {valid}", f"rights[{i}]"))
    if not wanted:
        errors.append(FieldError(f"name at least one of {', '.join(API_RIGHTS)}", "rights"))
    elif read_only and rights is not None and set(wanted) != {API_READ}:
        errors.append(
            FieldError("a read-only token holds read only: drop readOnly or the rights", "rights")
        )
    if errors:
        raise ValidationError(errors)
    if not namespaces:
        return (), ()
    return tuple(dict.fromkeys(namespaces)), tuple(r for r in API_RIGHTS if r in wanted)
