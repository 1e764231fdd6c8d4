"""The web UI (docs/ui.md): a static single-page app served at ``/ui/``.

The page, its script and the vendored libraries (``gossamer/ui/static``, package data) are
served without auth: they hold nothing secret. Every figure the page shows comes from the
API's routes (``/v1/topology``, ``/v1/series``, ``/v1/traces``, ``/v1/proxies``,
``/metrics``), which need an operator token as for any client. The page keeps the token in
memory only and sends it as ``Authorization`` (no cookie, so a cross-site request carries
no credential: nothing to forge). The headers below let the page load only its own files,
talk only to this API, and never be framed.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import gossamer
from gossamer.ca.trust import split_token
from gossamer.registry.operators import OperatorTokens

#: the page and its files (package data)
STATIC = Path(gossamer.__file__).parent / "ui" / "static"
PREFIX = "/ui"

#: own files only, requests to this origin only, no inline script or style, never framed
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    # an upgrade's files are fetched again (revalidated), never a stale script
    (b"cache-control", b"no-cache"),
]


class SecureHeaders:
    """Adds ``HEADERS`` to every response of the wrapped app (errors too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in HEADERS}
                kept = [(n, v) for n, v in message.get("headers", []) if n.lower() not in names]
                message = {**message, "headers": [*kept, *HEADERS]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except HTTPException as e:  # StaticFiles' 404 and 405: answered here, with the headers
            await PlainTextResponse(e.detail, e.status_code)(scope, receive, send_with_headers)


def install_ui(app: FastAPI) -> None:
    """``/ui/`` (``index.html``) and its files; ``/ui`` redirects there."""

    @app.get(PREFIX, include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    app.mount(PREFIX, SecureHeaders(StaticFiles(directory=STATIC, html=True)), name="ui")


def ui_url(api_url: str, token: str | None = None) -> str:
    """The UI's address; with ``token`` in the fragment (``#token=``), which the browser
    never sends to the server and the page removes from the address bar once read."""
    base = f"{api_url.rstrip('/')}{PREFIX}/"
    return base if token is None else f"{base}#token={quote(token, safe='')}"


async def read_only_token(operators: OperatorTokens, admin_token: str, name: str) -> str:
    """A new read-only operator token named ``name``, created by the holder of
    ``admin_token`` (what ``gossamer token create --operator --read-only`` makes)."""
    by = operators.authenticate(split_token(admin_token)[1])
    token, _ = await operators.create(by, name, read_only=True)
    return token
