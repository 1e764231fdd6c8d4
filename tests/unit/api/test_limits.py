"""Hostile request bodies: over the size limits, text that cannot be stored, loose types,
deep nesting; and listing that survives a resource stored before these checks existed
(issue 7 R2, R3, R8, R9)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import prometheus_client
import pytest
import pytest_asyncio

from gossamer.api.agent_bodies import TokenRequest
from gossamer.api.app import create_api
from gossamer.api.authz import CheckRequest
from gossamer.model import parse_manifest
from gossamer.testing.fake_controlplane import FakeControlPlane

from .shop import cart_service, manifest

JSON = {"content-type": "application/json"}


@pytest_asyncio.fixture
async def small(fake: FakeControlPlane) -> AsyncIterator[httpx.AsyncClient]:
    """An API that takes bodies up to 4000 bytes and resources up to 1000 bytes."""
    app = create_api(
        fake,
        metrics=prometheus_client.CollectorRegistry(),
        max_request_bytes=4000,
        max_resource_bytes=1000,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


def annotated(note: str, name: str = "cart") -> dict[str, Any]:
    m = manifest("Service", name, {"ports": [{"name": "http", "port": 8080}]})
    m["metadata"]["annotations"] = {"note": note}
    return m


def body_of(manifests: list[Any], **opts: Any) -> bytes:
    """JSON as a client that escapes non-ASCII writes it (lone surrogates included)."""
    return json.dumps({"manifests": manifests, **opts}).encode()


def problems(r: httpx.Response, status: int, code: str) -> list[str]:
    assert r.status_code == status, r.text
    assert r.json()["code"] == code, r.text
    return list(r.json()["errors"])


@pytest.mark.asyncio
async def test_a_body_over_the_limit_is_refused_before_it_is_parsed(
    small: httpx.AsyncClient, fake: FakeControlPlane
) -> None:
    big = body_of([annotated("x" * 5000)])
    r = await small.post("/v1/apply", content=big, headers=JSON)
    (line,) = problems(r, 413, "too_large")
    assert "larger than 4000 bytes" in line
    assert "--max-request-bytes" in line
    assert fake.revision == 0


@pytest.mark.asyncio
async def test_a_streamed_body_without_length_is_cut_off_at_the_limit(
    small: httpx.AsyncClient, fake: FakeControlPlane
) -> None:
    chunks_sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        yield b'{"manifests": [], "sources": ["'
        for _ in range(1000):
            chunks_sent += 1
            yield b"x" * 1000
        yield b'"]}'

    r = await small.post("/v1/apply", content=chunks(), headers=JSON)
    (line,) = problems(r, 413, "too_large")
    assert "larger than 4000 bytes" in line
    assert chunks_sent < 10, "the server read on after the limit"
    assert fake.revision == 0


@pytest.mark.asyncio
async def test_a_resource_over_the_limit_is_refused_naming_it(
    small: httpx.AsyncClient, fake: FakeControlPlane
) -> None:
    r = await small.post(
        "/v1/apply", json={"manifests": [cart_service(), annotated("x" * 1500, "big")]}
    )
    (line,) = problems(r, 422, "validation")
    assert line.startswith("manifests[1]: Service default/big: is ")
    assert "bytes as JSON, over the limit of 1000 bytes (--max-resource-bytes" in line
    assert fake.revision == 0
    valid = (await small.post("/v1/validate", json={"manifests": [annotated("x" * 1500)]})).json()
    assert valid["valid"] is False
    assert "over the limit of 1000 bytes" in valid["errors"][0]


@pytest.mark.asyncio
async def test_a_lone_surrogate_is_refused_at_the_door_naming_the_field(
    client: httpx.AsyncClient, fake: FakeControlPlane
) -> None:
    r = await client.post(
        "/v1/apply", content=body_of([cart_service(), annotated("bad \ud800")]), headers=JSON
    )
    (line,) = problems(r, 422, "validation")
    assert line.startswith("manifests[1].metadata.annotations.note: contains U+D800, half of a")
    assert fake.revision == 0
    # a proper pair is one character and fine
    ok = await client.post("/v1/apply", content=body_of([annotated("\U0001f600")]), headers=JSON)
    assert ok.status_code == 200, ok.text


@pytest.mark.asyncio
async def test_listing_survives_a_resource_stored_before_the_check(
    client: httpx.AsyncClient, fake: FakeControlPlane
) -> None:
    await fake.apply(
        [parse_manifest(annotated("bad \ud800")), parse_manifest(annotated("ok", "web"))]
    )
    for path in ("/v1/resources", "/v1/resources/services", "/v1/resources/service/default/cart"):
        r = await client.get(path)
        assert r.status_code == 200, f"{path}: {r.text}"
        assert "bad \ufffd" in r.text
    items = (await client.get("/v1/resources")).json()["items"]
    assert [i["metadata"]["name"] for i in items] == ["cart", "web"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("field", "value"),
    [("dryRun", "yes"), ("dryRun", 1), ("wait", "true"), ("waitTimeout", "5")],
)
async def test_apply_options_have_strict_types(
    client: httpx.AsyncClient, fake: FakeControlPlane, field: str, value: object
) -> None:
    r = await client.post("/v1/apply", json={"manifests": [cart_service()], field: value})
    (line,) = problems(r, 422, "request")
    assert line.startswith(f"body.{field}: input should be a valid ")
    assert fake.revision == 0


@pytest.mark.asyncio
async def test_delete_options_have_strict_types(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/delete", json={"resources": [{"kind": "Service", "name": "cart"}], "wait": "no"}
    )
    (line,) = problems(r, 422, "request")
    assert line == "body.wait: input should be a valid boolean, not 'no'"


def test_every_request_body_is_strict() -> None:
    with pytest.raises(ValueError, match="ttlSeconds"):
        TokenRequest.model_validate({"ttlSeconds": "600"})
    with pytest.raises(ValueError, match="user"):
        CheckRequest.model_validate({"user": 1, "target": "t", "right": "r"})


@pytest.mark.asyncio
async def test_deep_nesting_is_a_clear_error(client: httpx.AsyncClient) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    r = await client.post("/v1/apply", content=f'{{"manifests": [{deep}]}}'.encode(), headers=JSON)
    (line,) = problems(r, 422, "request")
    assert line.startswith("body: nested too deeply to read")
