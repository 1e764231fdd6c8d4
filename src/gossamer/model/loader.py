"""Reading resources from YAML files (several per file, separated by ``---``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from gossamer.errors import FieldError, ValidationError
from gossamer.model.base import Resource
from gossamer.model.kinds import parse_manifest


def parse_yaml(text: str, source: str = "") -> list[Resource]:
    """Parse every document in ``text``; collect all errors, then raise them together."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ValidationError([FieldError(f"{where}not valid YAML: {e}", source=source)]) from None
    resources: list[Resource] = []
    errors: list[FieldError] = []
    for doc in docs:
        try:
            resources.append(parse_manifest(doc, source))
        except ValidationError as e:
            errors.extend(e.errors)
    seen: dict[object, int] = {}
    for r in resources:
        if r.key in seen:
            errors.append(FieldError("defined twice in the same input", "", str(r.key), source))
        seen[r.key] = 1
    if errors:
        raise ValidationError(errors)
    return resources


def load_files(paths: Iterable[Path]) -> list[Resource]:
    """Load every file; an error in any file rejects them all (nothing is half-read)."""
    resources: list[Resource] = []
    errors: list[FieldError] = []
    for path in paths:
        try:
            text = path.read_text()
        except OSError as e:
            errors.append(FieldError(f"cannot read file: {e.strerror}", source=str(path)))
            continue
        try:
            resources.extend(parse_yaml(text, path.name))
        except ValidationError as e:
            errors.extend(e.errors)
    if not errors:
        keys = [r.key for r in resources]
        dupes = {k for k in keys if keys.count(k) > 1}
        errors = [FieldError("defined in more than one file", "", str(k)) for k in sorted(dupes)]
    if errors:
        raise ValidationError(errors)
    return resources
