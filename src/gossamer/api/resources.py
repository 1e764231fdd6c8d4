"""Routes that read and change resources: apply, validate, get, list, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gossamer.api.auth import READ_RIGHT, Authenticator, needs, require_operator
from gossamer.api.kind_names import resolve_kind
from gossamer.api.manifests import parse_request, showable, text_with_source, with_sources
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
from gossamer.controlplane.service import ControlPlaneService
from gossamer.errors import ValidationError
from gossamer.types import ResourceKey

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
    """The routes (operators only); a manifest over ``max_resource_bytes`` as JSON is
    refused. Changes wait for the control plane to be ready; reads (from the store) do not."""
    router = APIRouter(
        prefix="/v1",
        tags=["resources"],
        responses=_ERRORS,
        dependencies=[require_operator(auth)],
    )
    router.include_router(_changes_router(service, max_resource_bytes))
    router.include_router(_reads_router(service))
    return router


def _changes_router(service: ControlPlaneService, max_resource_bytes: int) -> APIRouter:
    router = APIRouter(dependencies=[require_ready(service)])

    @router.post("/apply", response_model=ApplyResponse)
    async def apply(body: ApplyRequest) -> ApplyResponse:
        """Validate and store every manifest atomically (or, with dryRun, only report the diff)."""
        resources, where = parse_request(body.manifests, body.sources, max_resource_bytes)
        try:
            result = await service.apply(
                resources, dry_run=body.dry_run, wait=body.wait, wait_timeout=body.wait_timeout
            )
        except ValidationError as e:
            raise with_sources(e, where) from None
        return ApplyResponse.of(result)

    @router.post("/validate", response_model=ValidateResponse, openapi_extra=needs(READ_RIGHT))
    async def validate(body: ManifestsRequest) -> ValidateResponse:
        """The errors applying these manifests would cause now; nothing is changed."""
        try:
            resources, where = parse_request(body.manifests, body.sources, max_resource_bytes)
        except ValidationError as e:
            return ValidateResponse(valid=False, errors=[str(x) for x in e.errors])
        errors = [text_with_source(t, where) for t in await service.validate(resources)]
        return ValidateResponse(valid=not errors, errors=errors)

    @router.delete("/resources/{kind}/{namespace}/{name}", response_model=ApplyResponse)
    async def delete(kind: str, namespace: str, name: str, wait: Wait = False) -> ApplyResponse:
        """Delete one resource; refused (422) while other resources refer to it."""
        key = ResourceKey(resolve_kind(kind), namespace, name)
        return ApplyResponse.of(await service.delete([key], wait=wait))

    @router.post("/delete", response_model=ApplyResponse)
    async def delete_many(body: DeleteRequest) -> ApplyResponse:
        """Delete several resources in one transaction (e.g. everything in a file)."""
        keys = [ResourceKey(resolve_kind(r.kind), r.namespace, r.name) for r in body.resources]
        return ApplyResponse.of(await service.delete(keys, wait=body.wait))

    return router


def _reads_router(service: ControlPlaneService) -> APIRouter:
    router = APIRouter()

    @router.get("/resources", response_model=ResourceList)
    async def list_all(namespace: Namespace = None) -> ResourceList:
        """Every resource of every kind."""
        return ResourceList(kind=None, items=showable(await service.list(None, namespace)))

    @router.get("/resources/{kind}", response_model=ResourceList)
    async def list_kind(kind: str, namespace: Namespace = None) -> ResourceList:
        """Every resource of one kind (singular or plural, any case: ``services``, ``svc``)."""
        canonical = resolve_kind(kind)
        items = showable(await service.list(canonical, namespace))
        return ResourceList(kind=canonical, items=items)

    @router.get("/resources/{kind}/{namespace}/{name}", response_model=dict[str, Any])
    async def get(kind: str, namespace: str, name: str) -> dict[str, Any]:
        """One stored manifest."""
        return showable([await service.get(ResourceKey(resolve_kind(kind), namespace, name))])[0]

    return router
