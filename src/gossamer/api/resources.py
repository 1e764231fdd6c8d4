"""Routes that read and change resources: apply, validate, get, list, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from gossamer.api.auth import READ_RIGHT, Authenticator, needs, require_operator
from gossamer.api.kind_names import resolve_kind
from gossamer.api.manifests import parse_request, showable, text_with_source, with_sources
from gossamer.api.permissions import Decisions
from gossamer.api.readiness import require_ready
from gossamer.api.schemas import (
    ApplyRequest,
    ApplyResponse,
    DeleteRequest,
    ErrorBody,
    ManifestsRequest,
    ResourceList,
    ValidateResponse,
)
from gossamer.authz.command_journal import JOURNAL_NAMESPACE
from gossamer.controlplane.service import ControlPlaneService
from gossamer.errors import NotFoundError, ValidationError
from gossamer.model.catalog import INTERNAL_KINDS
from gossamer.registry.record_manifests import REGISTRY_NAMESPACE
from gossamer.types import DEFAULT_NAMESPACE, Manifest, ResourceKey

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "unknown kind"),
        (404, "no such resource"),
        (409, "lost a race with another change; retry"),
        (503, "still loading, or the store could not make the change durable: nothing changed"),
        (422, "invalid input: nothing was changed"),
        (504, "stored, but not every affected proxy ACKed in time"),
    )
}

Namespace = Annotated[str | None, Query(description="only this namespace (default: all)")]
Wait = Annotated[bool, Query(description="return once every affected proxy has ACKed")]


def resources_router(
    service: ControlPlaneService, max_resource_bytes: int, auth: Authenticator | None = None
) -> APIRouter:
    """The routes (operators only, each request decided per namespace and kind by the
    NGAC graph: ``api.permissions``); a manifest over ``max_resource_bytes`` as JSON is
    refused. Changes wait for the control plane to be ready; reads (from the store) do not."""
    router = APIRouter(
        prefix="/v1",
        tags=["resources"],
        responses={**_ERRORS, 403: {"model": ErrorBody, "description": _FORBIDDEN}},
        dependencies=[require_operator(auth, decided_by_route=True)],
    )
    router.include_router(_changes_router(service, max_resource_bytes, auth))
    router.include_router(_reads_router(service, auth))
    return router


_FORBIDDEN = (
    "the token may not read, apply or delete some resource in its namespace and kind "
    "(each named, with NGAC's reason); nothing was changed"
)


def _changes_router(
    service: ControlPlaneService, max_resource_bytes: int, auth: Authenticator | None
) -> APIRouter:
    router = APIRouter(dependencies=[require_ready(service)])

    @router.post("/apply", response_model=ApplyResponse)
    async def apply(request: Request, body: ApplyRequest) -> ApplyResponse:
        """Validate and store every manifest atomically (or, with dryRun, only report the diff)."""
        resources, where = parse_request(body.manifests, body.sources, max_resource_bytes)
        keys = [r.key for r in resources]
        await Decisions(request, auth).require("apply", keys, "apply these resources")
        try:
            result = await service.apply(
                resources, dry_run=body.dry_run, wait=body.wait, wait_timeout=body.wait_timeout
            )
        except ValidationError as e:
            raise with_sources(e, where) from None
        return ApplyResponse.of(result)

    @router.post("/validate", response_model=ValidateResponse, openapi_extra=needs(READ_RIGHT))
    async def validate(request: Request, body: ManifestsRequest) -> ValidateResponse:
        """The errors applying these manifests would cause now; nothing is changed."""
        try:
            resources, where = parse_request(body.manifests, body.sources, max_resource_bytes)
        except ValidationError as e:
            return ValidateResponse(valid=False, errors=[str(x) for x in e.errors])
        keys = [r.key for r in resources]
        await Decisions(request, auth).require("read", keys, "validate these resources")
        errors = [text_with_source(t, where) for t in await service.validate(resources)]
        return ValidateResponse(valid=not errors, errors=errors)

    @router.delete("/resources/{kind}/{namespace}/{name}", response_model=ApplyResponse)
    async def delete(
        request: Request, kind: str, namespace: str, name: str, wait: Wait = False
    ) -> ApplyResponse:
        """Delete one resource; refused (422) while other resources refer to it."""
        key = ResourceKey(resolve_kind(kind), namespace, name)
        await Decisions(request, auth).require("delete", [key], "delete it")
        return ApplyResponse.of(await service.delete([key], wait=wait))

    @router.post("/delete", response_model=ApplyResponse)
    async def delete_many(request: Request, body: DeleteRequest) -> ApplyResponse:
        """Delete several resources in one transaction (e.g. everything in a file)."""
        keys = [ResourceKey(resolve_kind(r.kind), r.namespace, r.name) for r in body.resources]
        await Decisions(request, auth).require("delete", keys, "delete these resources")
        return ApplyResponse.of(await service.delete(keys, wait=body.wait))

    return router


#: the control plane's own namespaces (token and agent records, the NGAC journal)
SYSTEM_NAMESPACES = frozenset({REGISTRY_NAMESPACE, JOURNAL_NAMESPACE})


def _hidden(kind: str, namespace: str) -> bool:
    """The control plane's own records (internal kinds, anything in its namespace): in no
    answer of these routes, for any token. They hold digests of secrets no reader needs;
    tokens, agents and the NGAC journal have their own routes."""
    return kind in INTERNAL_KINDS or namespace in SYSTEM_NAMESPACES


def _visible(manifests: list[Manifest]) -> list[Manifest]:
    out = []
    for m in manifests:
        meta: Any = m.get("metadata") or {}
        if not _hidden(str(m.get("kind")), str(meta.get("namespace") or DEFAULT_NAMESPACE)):
            out.append(m)
    return out


def _reads_router(service: ControlPlaneService, auth: Authenticator | None) -> APIRouter:
    router = APIRouter()

    @router.get("/resources", response_model=ResourceList)
    async def list_all(request: Request, namespace: Namespace = None) -> ResourceList:
        """Every resource of every kind (that the token may read)."""
        decisions = Decisions(request, auth)
        if namespace is not None:
            await decisions.require_namespace(namespace, None)
        items = await decisions.readable(_visible(await service.list(None, namespace)))
        return ResourceList(kind=None, items=showable(items))

    @router.get("/resources/{kind}", response_model=ResourceList)
    async def list_kind(request: Request, kind: str, namespace: Namespace = None) -> ResourceList:
        """Every resource of one kind (singular or plural, any case: ``services``, ``svc``)
        that the token may read."""
        canonical = resolve_kind(kind)
        decisions = Decisions(request, auth)
        if namespace is not None:
            await decisions.require_namespace(namespace, canonical)
        items = await decisions.readable(_visible(await service.list(canonical, namespace)))
        return ResourceList(kind=canonical, items=showable(items))

    @router.get("/resources/{kind}/{namespace}/{name}", response_model=dict[str, Any])
    async def get(request: Request, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """One stored manifest."""
        key = ResourceKey(resolve_kind(kind), namespace, name)
        await Decisions(request, auth).require("read", [key], "read it")
        if _hidden(key.kind, key.namespace):
            raise NotFoundError(f"{key} does not exist")
        return showable([await service.get(key)])[0]

    return router
