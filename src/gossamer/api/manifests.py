"""Manifests from a request body into resources, remembering where each came from."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from gossamer.errors import FieldError, ValidationError
from gossamer.model import Resource, parse_manifest
from gossamer.model.text import replace_surrogates
from gossamer.types import Manifest

log = logging.getLogger(__name__)

#: ``"Kind namespace/name"`` -> the source (file name) it came from
Sources = dict[str, str]


def json_size(manifest: Any) -> int:
    """Bytes of ``manifest`` as compact UTF-8 JSON, about what the store keeps."""
    text = json.dumps(manifest, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8", "surrogatepass"))


def parse_request(
    manifests: Sequence[Any], sources: Sequence[str] | None, max_bytes: int | None = None
) -> tuple[list[Resource], Sources]:
    """Parse every manifest; raise one ``ValidationError`` with all problems, naming sources.

    A manifest without a given source is named by its position (``manifests[3]``); one
    larger than ``max_bytes`` as JSON is refused.
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
        if max_bytes is not None and (size := json_size(manifest)) > max_bytes:
            message = (
                f"is {size} bytes as JSON, over the limit of {max_bytes} bytes "
                "(--max-resource-bytes of the control plane): keep large data out of "
                "resources"
            )
            errors.append(FieldError(message, "", key, source))
            continue
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


def showable(manifests: list[Manifest]) -> list[Manifest]:
    """``manifests``, with U+FFFD in place of each lone surrogate in one stored before such
    text was refused at the door: one bad resource must never break a listing."""
    try:
        json.dumps(manifests, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return [_showable(m) for m in manifests]
    return manifests


def _showable(manifest: Manifest) -> Manifest:
    text = json.dumps(manifest, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        fixed: Manifest = json.loads(replace_surrogates(text))
        log.warning(
            "a stored resource holds a lone UTF-16 surrogate and is shown with U+FFFD in its "
            "place: re-apply it with valid text (%s)",
            fixed.get("metadata", {}).get("name", "?") if isinstance(fixed, dict) else "?",
        )
        return fixed
    return manifest
