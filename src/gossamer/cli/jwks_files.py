"""``Mesh.spec.authentication.jwt[].jwks.file``: read here, by the CLI, relative to the
manifest's file, and sent as ``jwks.inline``. The stored Mesh carries the keys, which reach
the proxies inline: no proxy and no control plane host needs the file, and the API refuses
a ``file`` (docs/ngac.md, "End users"). Likewise ``jwks.caFile`` (the CA of a ``jwks.uri``
the control plane fetches) is sent as ``jwks.ca``."""

from __future__ import annotations

from pathlib import Path

import pydantic

from gossamer.errors import FieldError, ValidationError, field_errors
from gossamer.model.base import Resource
from gossamer.model.mesh import Mesh


def _read(path: Path, field: str, where: str, manifest: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise ValidationError(
            [FieldError(f"cannot read {path}: {reason}", field, where, manifest.name)]
        ) from None


def _source(path: str) -> str:
    return "jwks.caFile" if path.endswith(".ca") else "jwks.file"


def inline_jwks_files(resource: Resource, manifest: Path) -> Resource:
    """``resource`` with every ``jwks.file`` read into ``jwks.inline`` and every
    ``jwks.caFile`` into ``jwks.ca``; ``ValidationError`` naming the file and field when one
    cannot be read or does not hold what it should."""
    if not isinstance(resource, Mesh):
        return resource
    issuers = resource.spec.authentication.jwt
    if not any(j.jwks.file is not None or j.jwks.caFile is not None for j in issuers):
        return resource
    where = str(resource.key)
    data = resource.to_manifest()
    for i, j in enumerate(issuers):
        field = f"spec.authentication.jwt[{i}].jwks"
        jwks = data["spec"]["authentication"]["jwt"][i]["jwks"]
        if j.jwks.file is not None:
            text = _read(manifest.parent / j.jwks.file, f"{field}.file", where, manifest)
            jwks.pop("file")
            jwks["inline"] = text
        if j.jwks.caFile is not None:
            text = _read(manifest.parent / j.jwks.caFile, f"{field}.caFile", where, manifest)
            jwks.pop("caFile")
            jwks["ca"] = text
    try:
        return Mesh.model_validate(data)
    except pydantic.ValidationError as e:
        errors = field_errors(e, resource=where, source=manifest.name)
        raise ValidationError(
            [
                FieldError(
                    f"{err.message} (read from a {_source(err.path)})",
                    err.path,
                    where,
                    manifest.name,
                )
                for err in errors
            ]
        ) from None
