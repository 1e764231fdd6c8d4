"""The YAML files given with ``-f``: found, then each read once and parsed once.

File I/O lives here, with its only caller: the model parses text and never opens a file.
Errors name the file (and, for bad YAML, the line); an error in any file rejects them all,
so nothing is half-read and nothing reaches the server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import typer

from gossamer.cli.ca_files import inline_ca_file
from gossamer.cli.jwks_files import inline_jwks_files
from gossamer.errors import FieldError, ValidationError
from gossamer.model import Resource, parse_manifest, parse_yaml
from gossamer.model.access_policy import AccessPolicy
from gossamer.model.loader import DEFAULT_MAX_NODES, parse_documents

YAML_SUFFIXES = (".yaml", ".yml")


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given; a directory stands for its ``*.yaml``/``*.yml`` files, sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES))
        else:
            out.append(path)
    if not out:
        raise typer.BadParameter("give at least one file with -f FILE (or a directory)")
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class LoadedFiles:
    """Resources read from files, in file order, each with the file it came from."""

    resources: list[Resource]
    #: the file name of each resource (as errors name it), parallel to ``resources``
    sources: list[str]

    def naming_files(self, errors: Sequence[FieldError]) -> list[FieldError]:
        """``errors`` with the file filled in for each that names a resource but no file."""
        where = {str(r.key): s for r, s in zip(self.resources, self.sources, strict=True)}
        return [
            replace(e, source=where[e.resource]) if not e.source and e.resource in where else e
            for e in errors
        ]


def _read(path: Path) -> str:
    """The file's text; ``ValidationError`` naming the file if it cannot be read as UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        problem = FieldError(f"cannot read file: {e.strerror}", source=str(path))
    except UnicodeDecodeError as e:
        problem = FieldError(f"not UTF-8 text (byte {e.start}): save it as UTF-8", source=path.name)
    raise ValidationError([problem])


def load_files(paths: Sequence[Path], *, max_nodes: int = DEFAULT_MAX_NODES) -> LoadedFiles:
    """Every resource in ``paths``; errors from every file are collected and raised together
    (``ValidationError``), and a resource defined in two files is one of them."""
    resources: list[Resource] = []
    sources: list[str] = []
    errors: list[FieldError] = []
    for path in paths:
        try:
            found = parse_yaml(_read(path), path.name, max_nodes=max_nodes)
            found = [inline_ca_file(r, path) for r in found]
            found = [inline_jwks_files(r, path) for r in found]
        except ValidationError as e:
            errors.extend(e.errors)
            continue
        resources.extend(found)
        sources.extend(path.name for _ in found)
    if not errors:
        dupes = {k for k, n in Counter(r.key for r in resources).items() if n > 1}
        errors = [FieldError("defined in more than one file", "", str(k)) for k in sorted(dupes)]
    if errors:
        raise ValidationError(errors)
    return LoadedFiles(resources, sources)


def load_policies(
    paths: Sequence[Path], *, max_nodes: int = DEFAULT_MAX_NODES
) -> list[AccessPolicy]:
    """The ``AccessPolicy`` resources in ``paths`` (documents of other kinds are skipped
    unchecked, so a policy can sit beside the services it is about)."""
    policies: list[AccessPolicy] = []
    errors: list[FieldError] = []
    for path in paths:
        try:
            docs = parse_documents(_read(path), path.name, max_nodes=max_nodes)
        except ValidationError as e:
            errors.extend(e.errors)
            continue
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "AccessPolicy":
                continue
            try:
                policy = parse_manifest(doc, path.name)
            except ValidationError as e:
                errors.extend(e.errors)
                continue
            if isinstance(policy, AccessPolicy):  # always, by its kind
                policies.append(policy)
    if errors:
        raise ValidationError(errors)
    return policies
