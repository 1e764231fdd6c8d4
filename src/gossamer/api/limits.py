"""``RequestLimits``: an ASGI middleware that checks a request body before anything parses it.

A body over ``max_bytes`` is refused with 413 as soon as its Content-Length says so, or
once that many bytes have streamed in, whichever comes first; the rest is never read. A
JSON body holding a lone UTF-16 surrogate (``"\\ud800"``) is refused with 422 naming the
field: it could be stored but never sent back (``gossamer.model.text``).

The defaults (``gossamer control-plane`` flags) are in ``api.body_limits``.
"""

from __future__ import annotations

import json
import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gossamer.api.errors import error_response
from gossamer.model.text import lone_surrogates

#: a JSON escape of a surrogate code point (a lone one, or half of a proper pair)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class RequestLimits:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        if problems := _unencodable(bytes(body)):
            response = error_response(422, "validation", problems)
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "too_large",
            [
                f"the request body is larger than {self.max_bytes} bytes, the control "
                "plane's --max-request-bytes: apply fewer resources at once, or raise the limit"
            ],
        )
        await response(scope, receive, send)


def _unencodable(body: bytes) -> list[str]:
    """An error per field holding a lone surrogate (only bodies with such escapes are read)."""
    if not _SURROGATE_ESCAPE.search(body):
        return []
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return []  # not JSON: the route reports that
    return [f"{path or 'body'}: {message}" for path, message in lone_surrogates(data)]


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body once, then whatever the client sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
