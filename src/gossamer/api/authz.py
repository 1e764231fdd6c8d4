"""NGAC access control over the REST API: decisions (audited), explanations, access lists,
administrative commands and the audit trail (operators only, ``gossamer.api.auth``).

An administrative batch runs as the NGAC user of the request's operator token, never as a
user the body names: a body with ``user`` is refused (once, anyone could name ``admin``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import Field

from gossamer.api.auth import READ_RIGHT, Authenticator, acting_user, needs, require_operator
from gossamer.api.schemas import Body
from gossamer.api.statistics import as_json
from gossamer.authz.service import AuthzService
from gossamer.errors import FieldError, ValidationError
from gossamer.registry.operators import ADMIN_USER


class CheckRequest(Body):
    user: str = Field(min_length=1)
    target: str = Field(min_length=1)
    right: str = Field(min_length=1)
    process: str | None = None
    #: who is asking (recorded in the audit trail)
    caller: str = ""


class Decision(Body):
    decision: str
    user: str
    target: str
    right: str
    process: str | None
    rights: list[str]
    rule: str


class CommandsRequest(Body):
    #: refused when given: the batch runs as the credential's NGAC user
    user: str | None = None
    commands: list[dict[str, Any]] = Field(min_length=1)


class CommandsResult(Body):
    obligationsFired: int


class AuditItem(Body):
    at: float
    caller: str
    user: str
    target: str
    right: str
    process: str | None
    decision: str
    rule: str


class AuditList(Body):
    items: list[AuditItem]


def install_authz(app: FastAPI, service: AuthzService, auth: Authenticator | None = None) -> None:
    router = APIRouter(prefix="/v1/authz", tags=["authz"], dependencies=[require_operator(auth)])

    @router.post("/check", response_model=Decision, openapi_extra=needs(READ_RIGHT))
    async def check(body: CheckRequest, request: Request) -> Decision:
        """Decide and record; the audit trail's caller is the credential's NGAC user (with
        the body's ``caller`` after it)."""
        caller = acting_user(request, body.caller)
        if body.caller and caller != body.caller:
            caller = f"{caller} ({body.caller})"
        e = service.check(body.user, body.target, body.right, body.process, caller)
        return Decision(
            decision=e.decision,
            user=e.user,
            target=e.target,
            right=e.right,
            process=e.process,
            rights=e.rights,
            rule=e.rule,
        )

    @router.get("/explain", response_model=dict[str, Any])
    async def explain(user: str, target: str, process: str | None = None) -> dict[str, Any]:
        return service.explain(user, target, process)

    @router.get("/access", response_model=dict[str, Any])
    async def access(user: str, process: str | None = None) -> dict[str, Any]:
        return {"user": user, "process": process, "access": service.access(user, process)}

    @router.post("/commands", response_model=CommandsResult)
    async def commands(body: CommandsRequest, request: Request) -> CommandsResult:
        """Run an administrative batch as the credential's NGAC user (the engine checks its
        rights on every command)."""
        if body.user is not None:
            raise ValidationError(
                [
                    FieldError(
                        "is not accepted: a batch runs as the NGAC user of the token you "
                        "send (Authorization: Bearer), never as a user the body names; "
                        "remove the field",
                        "user",
                    )
                ]
            )
        user = acting_user(request, ADMIN_USER)
        return CommandsResult(obligationsFired=await service.execute(user, body.commands))

    @router.get("/audit", response_model=AuditList)
    async def audit(limit: int = 100, user: str | None = None) -> AuditList:
        items = service.audit.recent(max(1, min(limit, 10_000)), user)
        return AuditList(
            items=[
                AuditItem(
                    at=e.at,
                    caller=e.caller,
                    user=e.user,
                    target=e.target,
                    right=e.right,
                    process=e.process,
                    decision=e.decision,
                    rule=e.rule,
                )
                for e in items
            ]
        )

    @router.get("/statistics", response_model=dict[str, Any])
    async def statistics() -> dict[str, Any]:
        return as_json(service.engine.statistics())

    app.include_router(router)
