"""The web UI without a token in its link: it asks for one, says why a wrong one is
refused, keeps a right one in memory only (no cookie, no storage), and shows the API's
own reason when telemetry is off."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration.ui.browser import chromium_page, needs_chromium

from gossamer.api.ui import read_only_token, ui_url
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.testing.controlplane import admin_token, running_control_plane

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, needs_chromium]


async def test_the_page_asks_for_a_token_and_keeps_it_in_memory(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path, telemetry=TelemetrySettings("off")) as app:
        token = await read_only_token(app.operators, admin_token(tmp_path), "ui-login")
        async with chromium_page() as browsed:
            page = browsed.page
            await page.goto(ui_url(app.api_url))
            await page.locator("#login").wait_for()
            await page.locator("#token").fill("gsm1.not-a-token")
            await page.locator("#login button").click()
            error = page.locator("#login-error")
            await error.filter(has_text="not known").wait_for()

            await page.locator("#token").fill(token)
            await page.locator("#login button").click()
            # the token works; the topology is the API's 503 saying telemetry is off
            await page.locator("#status").filter(has_text="telemetry").wait_for()
            assert await page.locator("#login").is_hidden()
            assert await page.evaluate("() => document.cookie") == ""
            stored = await page.evaluate("() => localStorage.length + sessionStorage.length")
            assert stored == 0
            assert browsed.outside == []
            # the refused token's 401 and telemetry's 503 are all Chromium logged
            assert all("status of 401" in e or "status of 503" in e for e in browsed.errors)
