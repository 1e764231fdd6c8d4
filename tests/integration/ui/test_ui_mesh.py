"""The web UI in Debian's headless Chromium against a control plane with its telemetry
child and real Envoys carrying traffic (gateway -> a -> b, some requests failing): the map
shows exactly the mesh's services and edges, clicking an edge shows the API's figures for
it, a failed trace opens with its five spans, proxies and search work, and the page asks
for nothing outside loopback and breaks no Content-Security-Policy rule."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page
from tests.integration.ui.browser import Browsed, chromium_page, needs_chromium

from gossamer.api.ui import read_only_token, ui_url
from gossamer.polling import wait_until
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import (
    admin_token,
    api_client,
    apply_manifests,
    mesh_envoy,
    running_control_plane,
)
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.types import API_VERSION, Manifest, ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio, needs_chromium]

A, B = "127.0.0.51", "127.0.0.52"
OK, FAILED = 24, 6
EDGES = {("default/edge", "default/a"), ("default/a", "default/b")}


def manifests(gw_port: int, a_port: int, b_port: int, local: int) -> list[Manifest]:
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Mesh",
            "metadata": {"name": "default"},
            "spec": {"tracing": {"sampling": 100}},
        },
        service("a"),
        service("b", 9080),
        workload(
            "a-1", "a", A, free_port(A), a_port,
            dependencies=[{"service": "b", "localAddress": A, "localPort": local}],
        ),
        workload("b-1", "b", B, free_port(B), b_port),
        {
            "apiVersion": API_VERSION,
            "kind": "Gateway",
            "metadata": {"name": "edge"},
            "spec": {"address": "127.0.0.1", "port": gw_port},
        },
        {
            "apiVersion": API_VERSION,
            "kind": "Route",
            "metadata": {"name": "edge"},
            "spec": {"gateways": ["edge"], "rules": [{"destinations": [{"service": "a"}]}]},
        },
    ]  # fmt: skip


def ms(x: float | None) -> str:
    """The page's formatting of a latency (format.js ``ms``)."""
    if x is None:
        return "\N{EN DASH}"
    return f"{x:.0f} ms" if x >= 100 else f"{x:.1f} ms" if x >= 10 else f"{x:.2f} ms"


async def click_element(page: Page, element_id: str, *, edge: bool) -> None:
    """A real mouse click where the map draws a node (its centre) or an edge (its middle)."""
    where = "renderedMidpoint" if edge else "renderedPosition"
    point = await page.evaluate(
        f"(id) => window.gossamerMap.getElementById(id).{where}()", element_id
    )
    box = await page.locator("#map").bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])


async def shown(page: Page, field: str) -> str:
    return (await page.locator(f'#details dd[data-field="{field}"]').inner_text()).strip()


async def test_the_map_edges_traces_and_proxies_in_chromium(tmp_path: Path) -> None:
    gw_port, local = free_port("127.0.0.1"), free_port(A)
    async with (
        HttpBackend("b", host=B) as b_app,
        HttpBackend("a", host=A, next_hop=f"http://{A}:{local}") as a_app,
        running_control_plane(tmp_path, telemetry=TelemetrySettings("auto")) as app,
    ):
        await apply_manifests(
            app, manifests(gw_port, a_app.address[1], b_app.address[1], local), wait=False
        )
        proxies = [
            mesh_envoy(app, ProxyIdentity("gateway", "default", "edge")),
            # (the service in the node, as an agent sends it: the client view's source)
            mesh_envoy(app, ProxyIdentity("sidecar", "default", "a-1", service="a")),
            mesh_envoy(app, ProxyIdentity("sidecar", "default", "b-1", service="b")),
        ]
        url = f"http://127.0.0.1:{gw_port}"
        async with (
            proxies[0], proxies[1], proxies[2],
            httpx.AsyncClient(timeout=10) as c,
            api_client(app) as api,
        ):  # fmt: skip

            async def chained() -> bool:
                try:
                    r = await c.get(url + "/ready")
                except httpx.TransportError:
                    return False
                return r.status_code == 200 and r.json().get("next", {}).get("backend") == "b"

            await wait_until(chained, timeout=60, what="gateway -> a -> b to answer")

            async def telemetry_up() -> bool:  # (entries flushed before it listens are lost)
                return (await api.get("/v1/ingestion")).status_code == 200

            await wait_until(telemetry_up, timeout=60, what="the telemetry child to answer")
            for i in range(OK + FAILED):
                r = await c.get(url + ("/status/500" if i < FAILED else "/ok"))
                assert r.status_code == (500 if i < FAILED else 200)

            async def settled() -> dict[str, Any] | None:
                r = await api.get("/v1/topology", params={"since": "5m", "view": "client"})
                if r.status_code != 200:
                    return None
                edges = {(e["source"], e["destination"]): e for e in r.json()["edges"]}
                ab = edges.get(("default/a", "default/b"), {})
                # the ready probes passed too: at least every request sent, and stable
                return r.json() if ab.get("errors5xx") == FAILED and set(edges) == EDGES else None

            await wait_until(settled, timeout=60, interval=1, what="the client view settled")

            async def failed_trace() -> list[dict[str, Any]] | None:
                q = {"since": "5m", "service": "default/b", "status": "5xx"}
                r = await api.get("/v1/traces", params=q)
                return (r.json()["traces"] or None) if r.status_code == 200 else None

            await wait_until(failed_trace, timeout=90, interval=1, what="a failed trace stored")
            topology = (await api.get("/v1/topology", params={"since": "5m"})).json()
            token = await read_only_token(app.operators, admin_token(tmp_path), "ui-test")

            async with chromium_page() as browsed:
                await drive(browsed, ui_url(app.api_url, token), topology, api)
                assert browsed.outside == [], "the page asked for something beyond loopback"
                assert browsed.errors == []
                assert all("token" not in u for u in browsed.requested)


async def drive(
    browsed: Browsed, url: str, topology: dict[str, Any], api: httpx.AsyncClient
) -> None:
    page = browsed.page
    await page.goto(url)
    assert "#token" not in page.url  # read, then removed from the address bar
    await page.wait_for_function(
        "() => window.gossamerMap && window.gossamerMap.edges().length > 0", timeout=30_000
    )
    nodes = await page.evaluate("() => window.gossamerMap.nodes().not('.lock').map((n) => n.id())")
    edges = await page.evaluate(
        "() => window.gossamerMap.edges().map((e) => [e.data('source'), e.data('target')])"
    )
    # exactly the API's nodes and edges (its merged view: the client's where a caller's
    # proxy reported, the server's otherwise: these Envoys hold no certificates, so b
    # and a also see `unauthenticated` callers)
    assert sorted(nodes) == sorted(n["id"] for n in topology["nodes"])
    assert {tuple(e) for e in edges} == {(e["source"], e["destination"]) for e in topology["edges"]}
    assert {tuple(e) for e in edges} >= EDGES
    # laid out by call depth: the gateway left, a in the middle, b right
    xs = await page.evaluate(
        "() => Object.fromEntries(window.gossamerMap.nodes().not('.lock')"
        ".map((n) => [n.id(), n.position('x')]))"
    )
    assert xs["default/edge"] < xs["default/a"] < xs["default/b"]
    # a lock on each edge all of whose requests were mTLS (none here: no certificates)
    locked = [e for e in topology["edges"] if e["requests"] and e["mtls"] >= 1]
    assert await page.evaluate("() => window.gossamerMap.nodes('.lock').length") == len(locked)

    # an edge's figures are the API's
    want = next(e for e in topology["edges"] if e["destination"] == "default/b")
    await click_element(page, "default/a -> default/b", edge=True)
    await page.locator('#details h2[data-selected="default/a → default/b"]').wait_for()
    await page.locator("#details figure.chart").first.wait_for()
    assert await shown(page, "requests") == str(want["requests"])
    assert await shown(page, "5xx") == str(FAILED) == str(want["errors5xx"])
    assert await shown(page, "p99") == ms(want["latencyMs"]["p99"])
    assert await page.locator("#details figure.chart canvas").count() == 2  # uPlot drew both

    # a failed trace opens as its waterfall: gateway -> a -> b, five spans
    failed = page.locator("#details section", has_text="Failed traces").locator("button.trace")
    await failed.first.wait_for()
    trace_id = await failed.first.get_attribute("data-trace")
    await failed.first.click()
    await page.locator("#trace .span-row").nth(4).wait_for()
    spans = (await api.get(f"/v1/traces/{trace_id}")).json()["spans"]
    rows = page.locator("#trace .span-row")
    assert await rows.count() == len(spans) == 5
    services = [(await rows.nth(i).locator(".service").inner_text()) for i in range(5)]
    assert services == [s["service"] for s in spans]
    assert await page.locator("#trace .bar.failed").count() == 5
    if shots := os.environ.get("GOSSAMER_UI_SHOTS"):
        await page.screenshot(path=f"{shots}/trace.png")
    await page.locator("#trace-close").click()

    # a node: the requests into it
    await click_element(page, "default/b", edge=False)
    await page.locator('#details h2[data-selected="default/b"]').wait_for()
    node = next(n for n in topology["nodes"] if n["id"] == "default/b")
    assert await shown(page, "requests") == str(node["requests"])

    # search: one of the services
    await page.locator("#search").fill("default/b")
    assert (await page.locator("#search-count").inner_text()) == f"1 of {len(topology['nodes'])}"
    assert await page.evaluate("() => window.gossamerMap.nodes('.faded').length") > 0
    await page.locator("#search").fill("")

    # proxies: three, synced, push latency from the control plane's histogram
    await page.locator("#show-proxies").click()
    rows = page.locator("#proxies tbody tr")
    await rows.nth(2).wait_for()
    assert await rows.count() == 3
    assert await page.locator("#proxies td.state").all_inner_texts() == ["synced"] * 3
    assert (await page.locator("#push-latency").inner_text()).startswith("Push latency over")
    if shots := os.environ.get("GOSSAMER_UI_SHOTS"):  # to look at the pages
        await page.screenshot(path=f"{shots}/proxies.png")
