"""``/docs`` and ``/redoc`` render in a real browser (Debian's Chromium via Playwright) with
no network beyond the control plane: Swagger UI shows the API's title and ReDoc its
heading, no request leaves loopback, and nothing but the Content-Security-Policy's own
refusals is logged as an error (ReDoc's sidebar asks for its maker's logo on a CDN; the
policy blocks it before any request is made)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossamer.server.listen import is_loopback
from gossamer.testing import running_control_plane

# the dev extra may not have Playwright yet (the web UI's tests bring it): skip, not fail
async_api = pytest.importorskip("playwright.async_api")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio,
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="/usr/bin/chromium is absent (apt-get install --no-install-recommends chromium)",
    ),
]

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]


@pytest.mark.parametrize(
    ("page_path", "heading"), [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")]
)
async def test_docs_page_renders_offline(tmp_path: Path, page_path: str, heading: str) -> None:
    async with running_control_plane(tmp_path) as app, async_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        try:
            context = await browser.new_context(ignore_https_errors=True)
            page = await context.new_page()
            errors: list[str] = []
            outside: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))

            async def only_loopback(route: async_api.Route) -> None:
                host = route.request.url.split("/")[2].rsplit(":", 1)[0]
                if route.request.url.startswith(("data:", "blob:")) or is_loopback(host):
                    await route.continue_()
                else:
                    outside.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_loopback)
            await page.goto(f"{app.api_url}{page_path}")
            title = await page.wait_for_selector(heading, timeout=60_000)
            assert title is not None
            assert "Gossamer control plane" in await title.inner_text()
            assert outside == []
            refused = "violates the following Content Security Policy directive"
            assert [e for e in errors if refused not in e] == [], errors
        finally:
            await browser.close()
