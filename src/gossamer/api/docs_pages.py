"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served with their assets from package data.

FastAPI's own pages load their JavaScript and CSS from a CDN, so they are blank offline,
behind a proxy or on an air-gapped host. Here the same pages (``get_swagger_ui_html``,
``get_redoc_html``) point at files vendored by ``scripts/vendor-docs-assets``
(``gossamer/api/docs_assets/static``, pinned in ``vendor-lock.json``), served at
``/docs-assets/``. Each page's Content-Security-Policy lets it load only this origin's files:
Swagger UI's one inline start-up script is allowed by its sha256, not by ``unsafe-inline``;
ReDoc injects its styles at run time (styled-components), so its page allows inline styles,
never inline scripts. The pages and assets hold nothing secret and need no token; the API
calls made from them need one, as for any client.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: the vendored files (package data)
STATIC = Path(__file__).parent / "docs_assets" / "static"
ASSETS = "/docs-assets"
SWAGGER_JS = f"{ASSETS}/swagger-ui-dist/swagger-ui-bundle.js"
SWAGGER_CSS = f"{ASSETS}/swagger-ui-dist/swagger-ui.css"
FAVICON = f"{ASSETS}/swagger-ui-dist/favicon-32x32.png"
REDOC_JS = f"{ASSETS}/redoc/redoc.standalone.js"

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _csp(script_hashes: list[str], inline_styles: bool) -> str:
    scripts = " ".join(["'self'", *(f"'sha256-{h}'" for h in script_hashes)])
    styles = "'self' 'unsafe-inline'" if inline_styles else "'self'"
    return (
        f"default-src 'none'; script-src {scripts}; style-src {styles}; "
        "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _inline_script_hashes(html: str) -> list[str]:
    """The CSP sha256 source of each inline ``<script>`` in ``html``."""
    return [
        base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        for body in _INLINE_SCRIPT.findall(html)
    ]


def _secured(page: HTMLResponse, inline_styles: bool) -> HTMLResponse:
    html = bytes(page.body).decode()
    headers = {
        "content-security-policy": _csp(_inline_script_hashes(html), inline_styles),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }
    return HTMLResponse(html, headers=headers)


def install_docs_pages(app: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """``/docs``, ``/redoc`` and ``/docs-assets/``; ``app`` must be made with
    ``docs_url=None, redoc_url=None`` (FastAPI's CDN pages would take the paths first)."""
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=SWAGGER_JS,
            swagger_css_url=SWAGGER_CSS,
            swagger_favicon_url=FAVICON,
            # no badge fetched from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _secured(page, inline_styles=False)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=REDOC_JS,
            redoc_favicon_url=FAVICON,
            with_google_fonts=False,
        )
        return _secured(page, inline_styles=True)

    app.mount(ASSETS, StaticFiles(directory=STATIC), name="docs-assets")
