"""The exception tree mapped to HTTP: every error answers ``{"errors": [...], "code": ...}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from gossamer.api.kinds import UnknownKindError
from gossamer.api.schemas import ErrorBody
from gossamer.errors import (
    ConfigError,
    ConflictError,
    GossamerError,
    NotFoundError,
    PermissionDeniedError,
    ProcessError,
    StoreError,
    ValidationError,
    WaitTimeoutError,
)

log = logging.getLogger(__name__)


class NotReadyError(GossamerError):
    """The control plane is still loading its state; the request can be retried shortly."""


#: most specific first; the first class the exception is an instance of wins
STATUS: list[tuple[type[Exception], int, str]] = [
    (NotReadyError, 503, "not_ready"),
    (UnknownKindError, 400, "unknown_kind"),
    (ValidationError, 422, "validation"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (PermissionDeniedError, 403, "forbidden"),
    (WaitTimeoutError, 504, "wait_timeout"),
    (StoreError, 503, "store"),
    (ConfigError, 400, "config"),
    (ProcessError, 502, "proxy"),
    (GossamerError, 500, "internal"),
]


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
    for cls, status, code in STATUS:
        if isinstance(exc, cls):
            return error_response(
                status, code, _render(exc), stored=isinstance(exc, WaitTimeoutError)
            )
    raise exc  # unreachable: GossamerError is last in STATUS


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


async def _request_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [f"{_location(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
    return error_response(422, "request", errors)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
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
