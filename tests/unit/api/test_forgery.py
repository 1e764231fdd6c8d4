"""What only a web page would send: a form body on a write (415), a foreign Host (421)."""

from __future__ import annotations

import httpx
import prometheus_client
import pytest

from gossamer.api.app import create_api
from gossamer.api.forgery import RequestOrigin, host_name
from gossamer.testing.fake_controlplane import FakeControlPlane

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("127.0.0.1:7070", "127.0.0.1"),
        ("[::1]:7070", "::1"),
        ("::1", "::1"),
        ("Localhost.:80", "localhost"),
        ("cp.example", "cp.example"),
    ],
)
async def test_host_name(host: str, name: str) -> None:
    assert host_name(host) == name


async def test_allowed_names() -> None:
    origin = RequestOrigin(lambda *_: None, ["cp.example", "10.0.0.5"])  # type: ignore[arg-type]
    for ok in ("10.1.2.3", "[fe80::1]:7070", "localhost", "app.localhost", "CP.example:1"):
        assert origin.allowed(ok), ok
    for bad in ("evil.example", "cp.example.evil", "localhost.evil", ""):
        assert not origin.allowed(bad), bad


async def test_writes_take_json_only_and_the_host_must_be_ours() -> None:
    app = create_api(
        FakeControlPlane(), metrics=prometheus_client.CollectorRegistry(), api_hosts=["cp"]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cp") as c:
        form = await c.post("/v1/apply", data={"manifests": "x"})
        assert form.status_code == 415, form.text
        assert "Content-Type: application/json" in form.json()["errors"][0]
        untyped = await c.post("/v1/delete", content=b'{"resources": []}')
        assert untyped.status_code == 415
        ok = await c.post("/v1/validate", json={"manifests": []})
        assert ok.status_code == 200, ok.text
        vendor = await c.post(
            "/v1/validate",
            content=b'{"manifests": []}',
            headers={"content-type": "application/merge-patch+json; charset=utf-8"},
        )
        assert vendor.status_code == 200, vendor.text
        foreign = await c.get("/v1/resources", headers={"host": "evil.example"})
        assert foreign.status_code == 421
        assert "DNS rebinding" in foreign.json()["errors"][0]
        assert (await c.get("/healthz", headers={"host": "127.0.0.1:7070"})).status_code == 200
