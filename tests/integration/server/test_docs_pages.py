"""``/docs`` and ``/redoc`` of a real control plane work offline (issue 13): each page
references only this server's own files, each of which answers 200 with the vendored bytes,
and the page's Content-Security-Policy lets it load nothing from elsewhere."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import httpx
import pytest

from gossamer.api.docs_pages import STATIC
from gossamer.server.app import ControlPlaneApp
from gossamer.testing import running_control_plane
from gossamer.testing.controlplane import api_verify

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

LOCK = json.loads((STATIC.parent / "vendor-lock.json").read_text(encoding="utf-8"))
VENDORED = {rel: digest for entry in LOCK.values() for rel, digest in entry["files"].items()}
#: every URL an HTML page can make the browser load
REFERENCE = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")


def anonymous(app: ControlPlaneApp) -> httpx.AsyncClient:
    """No token: the pages and their files are open, as ``/openapi.json`` is."""
    return httpx.AsyncClient(
        base_url=app.api_url, timeout=30, trust_env=False, verify=api_verify(app)
    )


def references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_page_loads_only_local_assets(tmp_path: Path, page: str) -> None:
    async with running_control_plane(tmp_path) as app, anonymous(app) as client:
        response = await client.get(page)
        assert response.status_code == 200, response.text
        html = response.text
        urls = references(html)
        assert any(u.endswith(".js") for u in urls), urls
        assert "/openapi.json" in urls
        for url in urls:
            # a path on this server: not absolute, not protocol-relative
            assert url.startswith("/") and not url.startswith("//"), url
        assert "http://" not in html and "https://" not in html, html
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.content, url
            if url.startswith("/docs-assets/"):
                rel = url.removeprefix("/docs-assets/")
                assert hashlib.sha256(asset.content).hexdigest() == VENDORED[rel], url

        csp = response.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        for name, sources in directives.items():
            for source in sources.split():
                assert source in {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"} or (
                    source.startswith("'sha256-")
                ), (name, source)
        assert "'unsafe-inline'" not in directives["script-src"]
        # Swagger UI's inline start-up script is allowed by its exact hash
        for body in re.findall(r"<script>(.*?)</script>", html, re.DOTALL):
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in directives["script-src"]


async def test_fastapi_cdn_pages_are_gone(tmp_path: Path) -> None:
    """Nothing else of the API names a CDN: the OpenAPI document's docs routes are ours."""
    async with running_control_plane(tmp_path) as app, anonymous(app) as client:
        for page in ("/docs", "/redoc"):
            html = (await client.get(page)).text
            assert "cdn.jsdelivr.net" not in html and "fonts.googleapis" not in html
        missing = await client.get("/docs-assets/nothing.js")
        assert missing.status_code == 404
