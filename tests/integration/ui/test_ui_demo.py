"""``gossamer demo`` prints the web UI's address with a read-only token, and the map it
opens in Debian's headless Chromium is live: the demo's services and edges, with traffic.

``GOSSAMER_UI_SCREENSHOT=docs/images/service-map.png`` also writes the screenshot the
README shows."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from tests.integration.ui.browser import chromium_page, needs_chromium

from gossamer.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio, needs_chromium]

GOSSAMER = str(Path(sys.executable).with_name("gossamer"))
SERVICES = {"default/edge", "default/web", "default/catalog", "default/reviews", "default/ratings"}
EDGES = {
    ("default/edge", "default/web"),
    ("default/web", "default/catalog"),
    ("default/web", "default/reviews"),
    ("default/web", "default/ratings"),
}


async def ui_line(proc: asyncio.subprocess.Process) -> str:
    """The ``web UI: URL`` line the demo prints once its control plane is up."""
    assert proc.stdout is not None
    async with asyncio.timeout(120):
        while line := (await proc.stdout.readline()).decode():
            if line.startswith("web UI: "):
                return line.removeprefix("web UI: ").strip()
    raise AssertionError("the demo printed no web UI line")


async def test_the_demo_prints_the_ui_and_its_map_is_live() -> None:
    proc = await asyncio.create_subprocess_exec(
        GOSSAMER, "demo", "--duration", "300",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    drain: asyncio.Task[bytes] | None = None
    try:
        url = await ui_line(proc)
        assert url.startswith("http://127.0.0.1:") and "/ui/#token=gsm1." in url
        assert proc.stdout is not None
        drain = asyncio.create_task(proc.stdout.read())  # (the live table: kept for errors)
        async with chromium_page() as browsed:
            page = browsed.page
            await page.goto(url)

            async def live() -> bool:  # every service and edge, all carrying traffic
                got = await page.evaluate(
                    "() => window.gossamerMap ? window.gossamerMap.edges()"
                    ".filter((e) => e.data('rps') > 0)"
                    ".map((e) => [e.data('source'), e.data('target')]) : []"
                )
                return {tuple(e) for e in got} >= EDGES

            # the page refreshes every 5 s; the demo's proxies log once the child listens
            await wait_until(live, timeout=120, interval=1, what="the demo's edges on the map")
            nodes = await page.evaluate(
                "() => window.gossamerMap.nodes().not('.lock').map((n) => n.id())"
            )
            assert set(nodes) >= SERVICES
            xs = await page.evaluate(
                "() => Object.fromEntries(window.gossamerMap.nodes().not('.lock')"
                ".map((n) => [n.id(), n.position('x')]))"
            )
            assert xs["default/edge"] < xs["default/web"] < xs["default/catalog"]
            assert xs["default/catalog"] == xs["default/reviews"] == xs["default/ratings"]
            if shot := os.environ.get("GOSSAMER_UI_SCREENSHOT"):
                await page.wait_for_timeout(40_000)  # a minute of traffic for the figures
                await page.select_option("#window", "1m")
                await page.select_option("#view", "client")  # (no mTLS in the demo yet)
                await page.wait_for_timeout(1_000)
                await click_reviews(page)
                await page.screenshot(path=shot)
            # (Chromium logs the 503s of the API while the demo's telemetry child starts)
            starting = "the server responded with a status of 503"
            assert [e for e in browsed.errors if starting not in e] == []
            assert browsed.outside == []
    except BaseException as e:
        e.add_note(f"the demo printed, at the end:\n{await _stop(proc, drain)}")
        raise
    tail = await _stop(proc, drain)
    assert proc.returncode == 0, tail


async def _stop(proc: asyncio.subprocess.Process, drain: asyncio.Task[bytes] | None) -> str:
    """Stop the demo (Ctrl-C) and return the end of what it printed."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(60):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return "(the demo did not stop within 60 s of SIGINT: killed)"
    out = await drain if drain is not None else b""
    return out.decode(errors="replace")[-6000:]


async def click_reviews(page: object) -> None:
    """The screenshot shows an edge's panel: web -> reviews selected."""
    from playwright.async_api import Page

    assert isinstance(page, Page)
    point = await page.evaluate(
        "() => window.gossamerMap.getElementById('default/web -> default/reviews')"
        ".renderedMidpoint()"
    )
    box = await page.locator("#map").bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
    await page.locator("#details figure.chart canvas").first.wait_for()
    await page.wait_for_timeout(500)  # uPlot's first paint
