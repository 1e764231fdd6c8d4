"""Manifests from a request body into resources, remembering where each came from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from gossamer.errors import FieldError, ValidationError
from gossamer.model import Resource, parse_manifest

#: ``"Kind namespace/name"`` -> the source (file name) it came from
Sources = dict[str, str]


def parse_request(
    manifests: Sequence[Any], sources: Sequence[str] | None
) -> tuple[list[Resource], Sources]:
    """Parse every manifest; raise one ``ValidationError`` with all problems, naming sources.

    A manifest without a given source is named by its position (``manifests[3]``).
    """
    if sources is not None and len(sources) != len(manifests):
        raise ValidationError(
            [
                FieldError(
                    f"has {len(sources)} entries for {len(manifests)} manifests: give one "
                    "source per manifest, or none",
                    "sources",
                )
            ]
        )
    resources: list[Resource] = []
    where: Sources = {}
    errors: list[FieldError] = []
    for i, manifest in enumerate(manifests):
        source = sources[i] if sources is not None else f"manifests[{i}]"
        try:
            resource = parse_manifest(manifest, source)
        except ValidationError as e:
            errors.extend(e.errors)
            continue
        key = str(resource.key)
        if key in where:
            errors.append(FieldError(f"defined twice (also in {where[key]})", "", key, source))
            continue
        where[key] = source
        resources.append(resource)
    if errors:
        raise ValidationError(errors)
    return resources, where


def with_sources(error: ValidationError, where: Sources) -> ValidationError:
    """``error`` with each field error's source filled in from the resource it names."""
    fixed = [
        replace(e, source=where[e.resource]) if not e.source and e.resource in where else e
        for e in error.errors
    ]
    return ValidationError(fixed)


def text_with_source(text: str, where: Sources) -> str:
    """Prefix an error line that starts with a resource (``Kind ns/name: ...``) by its source."""
    for key, source in where.items():
        if text.startswith(f"{key}:"):
            return f"{source}: {text}"
    return text
