"""Reading resources from YAML files (several per file, separated by ``---``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import yaml

from gossamer.errors import FieldError, ValidationError
from gossamer.model.base import Resource
from gossamer.model.kinds import parse_manifest


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a mapping with the same key twice (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str = "") -> list[Resource]:
    """Parse every document in ``text``; collect all errors, then raise them together."""
    try:
        docs = [d for d in yaml.load_all(text, Loader=_UniqueKeyLoader) if d is not None]
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
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            errors.append(FieldError(f"cannot read file: {e.strerror}", source=str(path)))
            continue
        except UnicodeDecodeError as e:
            errors.append(
                FieldError(f"not UTF-8 text (byte {e.start}): save it as UTF-8", source=path.name)
            )
            continue
        try:
            resources.extend(parse_yaml(text, path.name))
        except ValidationError as e:
            errors.extend(e.errors)
    if not errors:
        keys = [r.key for r in resources]
        dupes = {k for k, n in Counter(keys).items() if n > 1}
        errors = [FieldError("defined in more than one file", "", str(k)) for k in sorted(dupes)]
    if errors:
        raise ValidationError(errors)
    return resources
