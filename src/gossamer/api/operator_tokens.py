"""Routes of operator tokens: create one (its secret shown only then), list them (never a
secret), revoke one. Operators only; creating and revoking run as the caller's NGAC user,
so the engine checks it may create or delete the token's user (docs/security.md,
"Credentials")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import Field

from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.readiness import require_ready
from gossamer.api.schemas import Body, ErrorBody
from gossamer.registry.operators import Operator, OperatorTokenInfo, OperatorTokens

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (401, "missing, unknown or revoked token"),
        (403, "the token's NGAC user may not do this (a read-only token writes nothing)"),
        (404, "no such token"),
        (409, "the name is taken; or revoking the last token that can write"),
        (422, "invalid input: nothing was changed"),
    )
}


class OperatorTokenRequest(Body):
    #: the token's name (default: generated); its NGAC user is ``token:<name>``
    name: str | None = Field(default=None, max_length=63)
    #: GET only (with namespaces: read only)
    read_only: bool = False
    #: only these namespaces' resources (docs/ngac.md, "The API under NGAC")
    namespaces: list[str] | None = Field(default=None, max_length=100)
    #: with namespaces: of read, apply, delete (default all three)
    rights: list[str] | None = Field(default=None, max_length=3)
    #: a decision point's (``gossamer authz serve``): reads the graph, reports decisions
    decision_point: bool = False


class OperatorTokenBody(Body):
    name: str
    #: operator | read-only | namespaced | decision-point
    kind: str
    #: the NGAC user it acts as
    user: str
    created_at: datetime
    revoked_at: datetime | None
    #: a namespaced token's namespaces and rights (empty for the others)
    namespaces: list[str] = []
    rights: list[str] = []

    @classmethod
    def of(cls, t: OperatorTokenInfo) -> OperatorTokenBody:
        kind = (
            "decision-point"
            if t.decision_point
            else "namespaced"
            if t.namespaces
            else "read-only"
            if t.read_only
            else "operator"
        )
        return cls(
            name=t.name,
            kind=kind,
            user=t.user,
            created_at=t.created_at,
            revoked_at=t.revoked_at,
            namespaces=list(t.namespaces),
            rights=list(t.rights),
        )


class NewOperatorToken(OperatorTokenBody):
    #: the secret: shown only now (stored as a hash)
    token: str


class OperatorTokenList(Body):
    items: list[OperatorTokenBody]


def _caller(request: Request) -> Operator:
    who = getattr(request.state, "operator", None)
    assert isinstance(who, Operator), "operator routes are installed with an Authenticator"
    return who


def install_operator_tokens(
    app: FastAPI, tokens: OperatorTokens, auth: Authenticator | None
) -> None:
    router = APIRouter(
        prefix="/v1/operator-tokens",
        tags=["operator tokens"],
        responses=_ERRORS,
        dependencies=[require_ready(tokens.plane), require_operator(auth)],
    )

    @router.post("", response_model=NewOperatorToken)
    async def create(request: Request, body: OperatorTokenRequest | None = None) -> Any:
        """A new operator (or read-only, or namespaced) token acting as NGAC user
        ``token:<name>``, or a decision point's, as ``decision-point:<name>``."""
        body = body or OperatorTokenRequest()
        secret, info = await tokens.create(
            _caller(request),
            body.name,
            read_only=body.read_only,
            namespaces=body.namespaces or (),
            rights=body.rights,
            decision_point=body.decision_point,
        )
        return NewOperatorToken(token=secret, **OperatorTokenBody.of(info).model_dump())

    @router.get("", response_model=OperatorTokenList)
    async def list_tokens() -> OperatorTokenList:
        """Every operator token, revoked ones too (never a secret)."""
        return OperatorTokenList(items=[OperatorTokenBody.of(t) for t in tokens.tokens()])

    @router.delete("/{name}", response_model=OperatorTokenBody)
    async def revoke(name: str, request: Request) -> OperatorTokenBody:
        """Revoke a token: it answers 401 from now on and its NGAC user is deleted."""
        return OperatorTokenBody.of(await tokens.revoke(_caller(request), name))

    app.include_router(router)
