"""``RequestOrigin``: an ASGI middleware refusing what only a web page would send.

- A ``Host`` that is not one of the control plane's names is answered ``421``: a page on
  ``evil.example`` whose name an attacker re-points at 127.0.0.1 (DNS rebinding) still
  sends ``Host: evil.example``. Accepted: IP addresses (a rebinding page never has one),
  ``localhost`` (and ``*.localhost``), and the names given (the ``--api-addr`` host and
  each ``--api-host``); the port is not compared.
- A write (``POST``, ``PUT``, ``PATCH``, ``DELETE``) whose body is not JSON is answered
  ``415``: an HTML form can post ``application/x-www-form-urlencoded``,
  ``multipart/form-data`` or ``text/plain`` across sites without asking, never
  ``application/json``. A write with neither body nor ``Content-Type`` passes.

Both come before anything reads the body or the credential.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from gossamer.api.errors import error_response

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = ("localhost",)


def host_name(host: str) -> str:
    """``Host`` without its port and brackets, lower case, without a trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class RequestOrigin:
    """``names``: the host names the API answers to besides IP addresses and localhost
    (None: any ``Host``, for tests of the routes through an in-process client)."""

    def __init__(self, app: ASGIApp, names: Iterable[str] | None) -> None:
        self.app = app
        self.check_host = names is not None
        self.names = frozenset(host_name(n) for n in (*LOOPBACK_NAMES, *(names or ())) if n)

    def allowed(self, host: str) -> bool:
        name = host_name(host)
        return _is_ip(name) or name in self.names or name.endswith(".localhost")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        if self.check_host and (host is None or not self.allowed(host)):
            named = "no Host header" if host is None else f"Host {host!r}"
            response = error_response(
                421,
                "misdirected",
                [
                    f"{named} is not a name of this control plane (it answers to IP "
                    f"addresses and {', '.join(sorted(self.names))}): if a web page sent this, "
                    f"it may be trying DNS rebinding; if it is your name for this control "
                    "plane, start it with `--api-host NAME`"
                ],
            )
            await response(scope, receive, send)
            return
        if scope["method"] in WRITES:
            content_type = headers.get("content-type")
            has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
            if (content_type is not None and not _is_json(content_type)) or (
                content_type is None and has_body
            ):
                response = error_response(
                    415,
                    "unsupported_media_type",
                    [
                        f"{scope['method']} {scope['path']}: the body must be JSON, sent as "
                        f"Content-Type: application/json (got {content_type or 'none'}); "
                        "form-encoded and other bodies are refused so that no web page can "
                        "post to the control plane"
                    ],
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
