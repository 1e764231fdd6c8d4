"""Debian's Chromium driven by Playwright for the web UI's tests (docs/ui.md).

Playwright's own browser downloads are not used (``playwright install`` is never run):
``executable_path`` points at ``/usr/bin/chromium`` (``scripts/install`` installs it with
apt). Every request the page makes goes through a route that lets loopback through and
aborts, and records, anything else: the tests assert the list stays empty, so the page
works without a network. Console errors (a Content-Security-Policy violation is one) and
uncaught exceptions are recorded too.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import ConsoleMessage, Page, Route, async_playwright

from gossamer.server.listen import is_loopback

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is absent: install Debian's chromium "
    "(apt-get install --no-install-recommends chromium; scripts/install does)",
)


@dataclass
class Browsed:
    page: Page
    #: requests to anything but loopback (aborted)
    outside: list[str] = field(default_factory=list)
    #: console errors and uncaught exceptions
    errors: list[str] = field(default_factory=list)
    #: every URL the page requested
    requested: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def chromium_page(width: int = 1400, height: int = 860) -> AsyncIterator[Browsed]:
    """A page of a fresh headless Chromium; the API's certificate comes from the mesh CA,
    which the browser does not know (HTTPS errors are ignored, the tests check the rest)."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            context = await browser.new_context(
                ignore_https_errors=True,
                viewport={"width": width, "height": height},
                service_workers="block",
            )
            page = await context.new_page()
            browsed = Browsed(page)

            async def only_loopback(route: Route) -> None:
                url = route.request.url
                browsed.requested.append(url)
                host = urlsplit(url).hostname or ""
                if url.startswith(("data:", "blob:")) or is_loopback(host):
                    await route.continue_()
                else:
                    browsed.outside.append(url)
                    await route.abort("internetdisconnected")

            await context.route("**/*", only_loopback)

            def console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    browsed.errors.append(f"console: {message.text}")

            page.on("console", console)
            page.on("pageerror", lambda e: browsed.errors.append(f"page error: {e}"))
            yield browsed
        finally:
            await browser.close()
