"""``POST /v1/backup`` and ``POST /v1/rollback``: the state out as one archive, and users'
resources back to an earlier revision (docs/backup.md).

Both need ``POST`` on ``gossamer:api`` (an operator token; read-only and namespaced tokens
are refused): a backup holds every resource, token digests and the CA's key (encrypted
with the passphrase the request carries, which is never stored or logged), and a
rollback may change resources in every namespace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from pydantic import Field

import gossamer
from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.readiness import require_ready
from gossamer.api.schemas import Body, ErrorBody
from gossamer.backup.archive import build, check_passphrase, read_ca_files, seal_ca
from gossamer.backup.history import RollbackPlan, plan_rollback
from gossamer.ca.authority import CertificateAuthority
from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import ConflictError
from gossamer.model import parse_manifest
from gossamer.types import Manifest, ResourceKey


class BackupRequest(Body):
    #: encrypts the CA material in the archive (scrypt, AES-256-GCM); 8 characters at least
    passphrase: str = Field(min_length=1, max_length=1024)


class RollbackRequest(Body):
    to_revision: int = Field(ge=0)
    #: only compute and show the change
    dry_run: bool = False
    #: the ``digest`` of the plan the user saw: refused (409) if the plan is now another
    expect_digest: str | None = None


class KeyBody(Body):
    kind: str
    namespace: str
    name: str


class ChangeBody(Body):
    key: KeyBody
    #: the resource now (None: absent) and at ``toRevision`` (None: absent)
    now: dict[str, Any] | None
    then: dict[str, Any] | None


class SkippedBody(Body):
    key: KeyBody
    reason: str


class RollbackResponse(Body):
    to_revision: int
    #: the store's revision the plan was computed against
    from_revision: int
    created: list[ChangeBody]
    updated: list[ChangeBody]
    deleted: list[ChangeBody]
    skipped: list[SkippedBody]
    #: SHA-256 of the change: send it back as ``expectDigest`` to apply exactly this
    digest: str
    applied: bool
    #: the revision holding the rollback (applied), else the store's
    revision: int


def _key(key: ResourceKey) -> KeyBody:
    return KeyBody(kind=key.kind, namespace=key.namespace, name=key.name)


def _digest(plan: RollbackPlan) -> str:
    doc = {
        "created": [[*k, m] for k, m in plan.created],
        "updated": [[*k, m] for k, _, m in plan.updated],
        "deleted": [list(k) for k, _ in plan.deleted],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _response(plan: RollbackPlan, applied: bool, revision: int) -> RollbackResponse:
    return RollbackResponse(
        to_revision=plan.to_revision,
        from_revision=plan.from_revision,
        created=[ChangeBody(key=_key(k), now=None, then=m) for k, m in plan.created],
        updated=[ChangeBody(key=_key(k), now=n, then=t) for k, n, t in plan.updated],
        deleted=[ChangeBody(key=_key(k), now=m, then=None) for k, m in plan.deleted],
        skipped=[SkippedBody(key=_key(s.key), reason=s.reason) for s in plan.skipped],
        digest=_digest(plan),
        applied=applied,
        revision=revision,
    )


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a passphrase too short, or unreadable CA files"},
    409: {"model": ErrorBody, "description": "the rollback's change is not the one expected"},
    422: {"model": ErrorBody, "description": "a revision out of history; an invalid result"},
}


def install_backup(
    app: FastAPI, plane: ControlPlane, ca: CertificateAuthority | None, auth: Authenticator
) -> None:
    router = APIRouter(
        prefix="/v1",
        tags=["backup"],
        responses=_ERRORS,
        dependencies=[require_operator(auth), require_ready(plane)],
    )

    @router.post("/backup", response_class=Response)
    async def backup(body: BackupRequest) -> Response:
        """Every resource the store holds (users', agents', tokens' digests, the NGAC
        journal) and the CA material, encrypted with the passphrase: one JSON archive
        for ``gossamer restore``."""
        check_passphrase(body.passphrase)
        stored, revision = await plane.store.list()
        sealed = None
        if ca is not None:
            files = await asyncio.to_thread(read_ca_files, ca.directory)
            sealed = await asyncio.to_thread(seal_ca, files, body.passphrase)
        doc = build(
            [s.manifest for s in stored],
            revision=revision,
            backend=plane.store.statistics().backend,
            version=gossamer.__version__,
            ca=sealed,
        )
        text = await asyncio.to_thread(json.dumps, doc, separators=(",", ":"))
        return Response(text, media_type="application/json")

    @router.post("/rollback", response_model=RollbackResponse)
    async def rollback(body: RollbackRequest) -> RollbackResponse:
        """Users' resources (public kinds, not registered by an agent) as they were at
        ``toRevision``, as one new change; with ``dryRun`` only the change is answered.
        Agents' workloads, agents, tokens and the NGAC journal are never touched."""
        async with plane.apply_lock:
            stored, revision = await plane.store.list()
            current: dict[ResourceKey, Manifest] = {s.key: s.manifest for s in stored}
            plan = await plan_rollback(plane.store, body.to_revision, current, revision)
            digest = _digest(plan)
            if body.expect_digest is not None and body.expect_digest != digest:
                raise ConflictError(
                    f"the resources changed since that rollback to revision {body.to_revision} "
                    "was shown (the store is now at revision "
                    f"{revision}); nothing was changed: run the rollback again to see the "
                    "change it would make now"
                )
            if plan.empty:
                return _response(plan, False, revision)
            puts = [parse_manifest(m) for _, m in plan.created]
            puts += [parse_manifest(t) for _, _, t in plan.updated]
            result = await plane.apply_held(
                puts, deletes=[k for k, _ in plan.deleted], dry_run=body.dry_run
            )
            return _response(plan, not body.dry_run, result.revision)

    app.include_router(router)
