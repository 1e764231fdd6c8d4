"""Proxy status and config, health, readiness, metrics, statistics, the OpenAPI schema."""

from __future__ import annotations

import httpx
import prometheus_client
import pytest

from gossamer.testing.fake_controlplane import FakeControlPlane
from gossamer.xds.status import ProxyStatus

from .shop import proxy


@pytest.mark.asyncio
async def test_proxy_status_lists_every_proxy_with_its_state(
    client: httpx.AsyncClient, fake: FakeControlPlane
) -> None:
    assert (await client.get("/v1/proxies")).json() == {"items": []}
    fake.add_proxy(proxy("a"))
    fake.add_proxy(proxy("b", nack="port 8080 in use"))
    fake.add_proxy(proxy("c", connected=False))
    fake.add_proxy(proxy("d", acked="old"))
    items = (await client.get("/v1/proxies")).json()["items"]
    assert [(p["name"], p["state"]) for p in items] == [
        ("a", "synced"),
        ("b", "rejected"),
        ("c", "disconnected"),
        ("d", "stale"),
    ]
    b = items[1]
    assert b["nodeId"] == "sidecar~default~b"
    assert b["host"] == "host-a"
    assert b["protocol"] == "delta"
    listeners = next(t for t in b["types"] if t["type"] == "listeners")
    assert listeners["lastNack"]["message"] == "port 8080 in use"
    assert listeners["synced"] is False
    assert items[3]["types"][0]["sentVersion"] == "a1b2c3d4e5f6"
    assert items[3]["types"][0]["ackedVersion"] == "old"

    one = await client.get("/v1/proxies/sidecar~default~b")
    assert one.json() == b
    missing = await client.get("/v1/proxies/sidecar~default~zz")
    assert missing.status_code == 404


@pytest.mark.asyncio
async def test_proxy_config_without_hosts_to_ask(
    client: httpx.AsyncClient, fake: FakeControlPlane
) -> None:
    """The control plane never reads a proxy's admin API itself: with no agent registry no
    host can be asked (tests/unit/registry/test_dumps_api.py asks real ones)."""
    fake.add_proxy(proxy("a"))  # connected, and it announced an admin address
    r = await client.get("/v1/proxies/sidecar~default~a/config")
    assert r.status_code == 404
    assert r.json()["errors"] == [
        "no host runs sidecar~default~a; its config dump is available only through its "
        "agent or gateway"
    ]
    bad = await client.get("/v1/proxies/sidecar~default~a/config", params={"type": "secrets"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0].startswith("query.type: ")


@pytest.mark.asyncio
async def test_health_and_readiness(client: httpx.AsyncClient, fake: FakeControlPlane) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
    fake.ready = False
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "starting"}
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.asyncio
async def test_metrics_expose_the_given_registry(
    client: httpx.AsyncClient, metrics: prometheus_client.CollectorRegistry
) -> None:
    pushes = prometheus_client.Counter("gossamer_xds_pushes", "pushes", ["type"], registry=metrics)
    pushes.labels("clusters").inc(3)
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'gossamer_xds_pushes_total{type="clusters"} 3.0' in r.text


@pytest.mark.asyncio
async def test_statistics_are_the_service_s(
    client: httpx.AsyncClient, fake: FakeControlPlane
) -> None:
    fake.add_proxy(proxy("cart-1"))
    r = await client.get("/v1/statistics")
    assert r.json() == {
        "plane": {
            "ready": True,
            "revision": 0,
            "resources": 0,
            "connected_proxies": 1,
            "builds": 0,
            "build_seconds": 0.0,
            "memo_entries": 0,
            "leading": True,
            "leader": "this process",
        },
        "store": {
            "backend": "fake",
            "revision": 0,
            "resources": 0,
            "log_entries": 0,
            "compact_revision": 0,
            "history": 0,
            "watchers": 0,
            "path": None,
        },
        "xds": {"nodes": 1, "snapshots": 1, "events": 0},
        # this app serves no NGAC engine and no agent registry
        "authz": None,
        "registry": None,
    }


@pytest.mark.asyncio
async def test_openapi_schema_and_docs_are_served(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path in (
        "/v1/apply",
        "/v1/validate",
        "/v1/resources/{kind}",
        "/v1/resources/{kind}/{namespace}/{name}",
        "/v1/proxies",
        "/v1/proxies/{node_id}/config",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in schema["paths"], path
    apply_body = schema["components"]["schemas"]["ApplyRequest"]["properties"]
    assert {"manifests", "dryRun", "wait", "waitTimeout"} <= set(apply_body)
    assert (await client.get("/docs")).status_code == 200


def test_two_apps_share_nothing() -> None:
    from gossamer.api.app import create_api

    a, b = FakeControlPlane(), FakeControlPlane()
    app_a = create_api(a, metrics=prometheus_client.CollectorRegistry())
    app_b = create_api(b, metrics=prometheus_client.CollectorRegistry())
    assert app_a is not app_b
    assert app_a.routes is not app_b.routes


class _BrokenAdmin(FakeControlPlane):
    def proxy_status(self) -> list[ProxyStatus]:
        raise httpx.ConnectError("connection refused")


@pytest.mark.asyncio
async def test_unexpected_errors_are_json_500s() -> None:
    from gossamer.api.app import create_api

    app = create_api(_BrokenAdmin(), metrics=prometheus_client.CollectorRegistry())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        r = await c.get("/v1/proxies")
    assert r.status_code == 500
    assert r.json()["code"] == "internal"
    assert r.json()["errors"] == [
        "internal error (ConnectError: connection refused); see the control plane's log"
    ]


def test_wait_timeouts_always_say_the_change_is_stored() -> None:
    from gossamer.api.errors import _render
    from gossamer.errors import WaitTimeoutError

    [line] = _render(WaitTimeoutError("2 proxies did not ACK within 5 s"))
    assert line.startswith("the change IS stored")
    assert _render(WaitTimeoutError("revision 3 is stored, but ...")) == [
        "revision 3 is stored, but ..."
    ]
