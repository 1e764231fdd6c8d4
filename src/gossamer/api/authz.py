"""NGAC access control over the REST API: decisions (audited), explanations, access lists,
administrative commands and the audit trail."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import Field

from gossamer.api.schemas import Body
from gossamer.api.statistics import as_json
from gossamer.authz.service import AuthzService


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
    #: the administrator running the batch (its rights are checked in the graph)
    user: str = Field(min_length=1)
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


def install_authz(app: FastAPI, service: AuthzService) -> None:
    router = APIRouter(prefix="/v1/authz", tags=["authz"])

    @router.post("/check", response_model=Decision)
    async def check(body: CheckRequest) -> Decision:
        e = service.check(body.user, body.target, body.right, body.process, body.caller)
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
    async def commands(body: CommandsRequest) -> CommandsResult:
        return CommandsResult(obligationsFired=await service.execute(body.user, body.commands))

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
