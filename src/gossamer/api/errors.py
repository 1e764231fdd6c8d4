"""The exception tree mapped to HTTP: every error answers ``{"errors": [...], "code": ...}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

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


def _request_message(error: Any) -> str:
    msg = str(error["msg"])
    msg = msg[:1].lower() + msg[1:]
    given = error.get("input")
    if str(error["type"]).endswith("_type") and isinstance(given, str | int | float | bool):
        msg += f", not {given!r}"[:80]  # strict types: say what was sent
    return f"{_location(tuple(error['loc']))}: {msg}"


async def _request_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "request", [_request_message(e) for e in exc.errors()])


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
