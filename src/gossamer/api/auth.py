"""Authentication as a router dependency: the one place that lets an operator's token in.

A router (or route) serving operators declares ``dependencies=[require_operator(auth)]``.
Each of its requests must carry ``Authorization: Bearer <token>`` of an operator token
(``gossamer.registry.operators``): missing, unknown or revoked, it is answered ``401`` with
one line saying what to do and ``WWW-Authenticate: Bearer``; a token whose NGAC user lacks
the right the request needs on ``gossamer:api`` is answered ``403``. The right is the
request's HTTP method, or what the route declares with ``openapi_extra=needs(READ_RIGHT)``
(a ``POST`` that changes nothing). Routes on resources authenticate with
``require_operator(auth, decided_by_route=True)`` and decide per namespace and kind
themselves (``api.permissions``). Routes of the agent protocol check the agent's own
credential instead (``gossamer.api.agents``); ``/healthz``, ``/readyz`` and the OpenAPI
documents are open. docs/security.md, "Credentials".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Depends, Request
from starlette.routing import BaseRoute

from gossamer.errors import AuthError, PermissionDeniedError
from gossamer.registry.api_access import ApiDecision
from gossamer.registry.operators import API_OBJECT, READ_RIGHT, Operator

#: the ``openapi_extra`` key a route names the right it needs with
RIGHT_KEY = "x-gossamer-right"

__all__ = ["READ_RIGHT", "Authenticator", "Operators", "bearer", "needs", "require_operator"]


class Operators(Protocol):
    """Operator tokens (``OperatorTokens``)."""

    def authenticate(self, secret: str) -> Operator:
        """The operator of ``secret``; ``AuthError`` if unknown or revoked."""
        ...

    def allows(self, operator: Operator, right: str, target: str = API_OBJECT) -> bool:
        """Whether ``operator`` holds ``right`` on ``target`` (the API, or an object in it)."""
        ...

    async def decide(
        self, operator: Operator, right: str, namespace: str, kind: str
    ) -> ApiDecision:
        """Whether ``operator`` holds ``right`` on ``namespace``'s resources of ``kind``."""
        ...


@dataclass(frozen=True)
class Authenticator:
    operators: Operators
    #: where the first operator token is, as the 401 tells users
    admin_token_file: str = "<data-dir>/admin.token"

    def missing(self) -> str:
        return (
            "missing credential: pass --token, set GOSSAMER_TOKEN, or put the token in "
            "~/.config/gossamer/token; the control plane wrote the first operator token to "
            f"{self.admin_token_file}"
        )


def needs(right: str) -> dict[str, Any]:
    """``openapi_extra`` of a route whose requests need ``right`` rather than their method."""
    return {RIGHT_KEY: right}


def bearer(authorization: str | None, missing: str) -> str:
    """The credential of an ``Authorization: Bearer <credential>`` header; ``AuthError``
    with ``missing`` as its message if there is none."""
    scheme, _, credential = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise AuthError(missing, "no_credential")
    return credential.strip()


def _right(request: Request) -> str:
    route = request.scope.get("route")
    extra = getattr(route, "openapi_extra", None) if isinstance(route, BaseRoute) else None
    if isinstance(extra, dict) and isinstance(extra.get(RIGHT_KEY), str):
        return str(extra[RIGHT_KEY])
    return READ_RIGHT if request.method == "HEAD" else request.method


def require_operator(
    auth: Authenticator | None, *, decided_by_route: bool = False, on: str = API_OBJECT
) -> Any:
    """A FastAPI dependency letting in only operators holding the right the request needs
    on ``on`` (the API's object, or an object below it: ``gossamer:authz-graph``, which a
    decision point's token may read); with ``decided_by_route``, every operator: the route
    decides. The operator is put in ``request.state.operator``. ``auth`` None lets
    everyone in: only for tests of the routes themselves (the server always passes one)."""

    def operator(request: Request) -> Operator | None:
        if auth is None:
            return None
        token = bearer(request.headers.get("authorization"), auth.missing())
        who = auth.operators.authenticate(token)
        right = _right(request)
        if not decided_by_route and not auth.operators.allows(who, right, on):
            raise PermissionDeniedError(
                f"the {who.kind} {who.name!r} (NGAC user {who.user!r}) does not hold {right!r} "
                f"on {on}, which {request.method} {request.url.path} needs; use an "
                "operator token (`gossamer token create --operator`) or grant its user the "
                "right through the NGAC API"
            )
        request.state.operator = who
        return who

    return Depends(operator)


def acting_user(request: Request, default: str) -> str:
    """The NGAC user of the request's operator (``default`` when nobody authenticated it:
    an app built without an ``Authenticator``)."""
    who = getattr(request.state, "operator", None)
    return who.user if isinstance(who, Operator) else default
