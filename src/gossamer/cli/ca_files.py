"""``ExternalService.spec.tls.caFile``: read here, by the CLI, relative to the manifest's
file, and sent as ``tls.ca`` (PEM). The stored resource carries the CA inline, so no proxy
host needs a copy of the file, and the API refuses a ``caFile`` (docs/resources.md)."""

from __future__ import annotations

from pathlib import Path

import pydantic

from gossamer.errors import FieldError, ValidationError, field_errors
from gossamer.model.base import Resource
from gossamer.model.external_service import ExternalService


def inline_ca_file(resource: Resource, manifest: Path) -> Resource:
    """``resource`` with its ``tls.caFile`` (if any) read and put in ``tls.ca``;
    ``ValidationError`` naming the file and field when it cannot be read or parsed."""
    if not isinstance(resource, ExternalService):
        return resource
    tls = resource.spec.tls
    if tls is None or tls.caFile is None:
        return resource
    where = str(resource.key)
    path = manifest.parent / tls.caFile
    try:
        pem = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise ValidationError(
            [FieldError(f"cannot read {path}: {reason}", "spec.tls.caFile", where, manifest.name)]
        ) from None
    data = resource.to_manifest()
    data["spec"]["tls"].pop("caFile")
    data["spec"]["tls"]["ca"] = pem
    try:
        return ExternalService.model_validate(data)
    except pydantic.ValidationError as e:
        errors = field_errors(e, resource=where, source=manifest.name)
        raise ValidationError(
            [
                FieldError(
                    f"{err.message} (read from caFile {tls.caFile})", err.path, where, manifest.name
                )
                for err in errors
            ]
        ) from None
