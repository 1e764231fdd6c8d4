"""The exception tree mapped to HTTP: every error answers ``{"errors": [...], "code": ...}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from gossamer.api.schemas import ErrorBody
from gossamer.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    CountersUnavailableError,
    GossamerError,
    JwksFetchError,
    NotFoundError,
    NotReadyError,
    PermissionDeniedError,
    PollTimeoutError,
    ProcessError,
    StoreError,
    TelemetryUnavailableError,
    UnknownKindError,
    ValidationError,
    WaitTimeoutError,
    XdsError,
    field_errors,
)

log = logging.getLogger(__name__)


#: The one map of the exception tree to HTTP: class -> status and ``code`` of the body.
#: Most specific first; the first class the exception is an instance of wins. Clients
#: turn an answer back into an error by its status (``ApiError.answered``).
HTTP_ERRORS: list[tuple[type[GossamerError], int, str]] = [
    (NotReadyError, 503, "not_ready"),
    (UnknownKindError, 400, "unknown_kind"),
    (ValidationError, 422, "validation"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (AuthError, 401, "unauthorized"),
    (PermissionDeniedError, 403, "forbidden"),
    (WaitTimeoutError, 504, "wait_timeout"),
    (PollTimeoutError, 504, "timeout"),
    (StoreError, 503, "store"),
    (CountersUnavailableError, 503, "counters"),
    (TelemetryUnavailableError, 503, "telemetry_unavailable"),
    (ConfigError, 400, "config"),
    (ProcessError, 502, "proxy"),
    (XdsError, 502, "xds"),
    # an identity provider that did not answer with a usable JWKS
    (JwksFetchError, 502, "jwks_fetch"),
    (GossamerError, 500, "internal"),
]


def http_error(cls: type[BaseException]) -> tuple[int, str]:
    """The status and code an exception of ``cls`` is answered with."""
    for base, status, code in HTTP_ERRORS:
        if issubclass(cls, base):
            return status, code
    return 500, "internal"


def error_response(
    status: int, code: str, errors: list[str], *, stored: bool = False
) -> JSONResponse:
    body = ErrorBody(errors=errors, code=code, stored=stored)
    return JSONResponse(body.model_dump(mode="json", by_alias=True), status_code=status)


def _render(exc: Exception) -> list[str]:
    if isinstance(exc, ValidationError):
        return [str(e) for e in exc.errors] or [str(exc)]
    if isinstance(exc, WaitTimeoutError) and "stored" not in str(exc).lower():
        return [
            f"the change IS stored and will reach the proxies as they catch up, but the wait "
            f"ended: {exc}"
        ]
    return [str(exc) or type(exc).__name__]


async def _gossamer_error(_: Request, exc: Exception) -> JSONResponse:
    status, code = http_error(type(exc))
    stored = isinstance(exc, WaitTimeoutError)
    body = ErrorBody(errors=_render(exc), code=code, stored=stored)
    data = body.model_dump(mode="json", by_alias=True)
    if isinstance(exc, AuthError):
        # the reason an agent acts on (only ``revoked`` stops it), docs/agent-protocol.md
        data["reason"] = exc.reason
        return JSONResponse(data, status_code=status, headers={"WWW-Authenticate": "Bearer"})
    return JSONResponse(data, status_code=status)


async def _request_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "request", [str(e) for e in field_errors(exc)])


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, RecursionError):
        # FastAPI's answer to a body json.loads cannot read: say why
        return error_response(
            422,
            "request",
            [
                "body: nested too deeply to read (objects and arrays about 1,000 levels "
                "deep); no request nests like that: check the document"
            ],
        )
    if isinstance(exc.__cause__, UnicodeDecodeError):
        return error_response(
            422, "request", [f"body: not UTF-8 (byte {exc.__cause__.start}): send UTF-8 JSON"]
        )
    code = "not_found" if exc.status_code == 404 else "http"
    return error_response(exc.status_code, code, [str(exc.detail)])


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error serving a request", exc_info=exc)
    return error_response(
        500,
        "internal",
        [f"internal error ({type(exc).__name__}: {exc}); see the control plane's log"],
    )


def install_error_handlers(app: FastAPI) -> None:
    handler: Callable[[Request, Exception], Awaitable[JSONResponse]] = _gossamer_error
    app.add_exception_handler(GossamerError, handler)
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(RequestValidationError, _request_error)
    app.add_exception_handler(HTTPException, _http_error)
