"""GET and DELETE of resources: kinds as people type them, 404s, refused deletes."""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio

from gossamer.testing.fake_controlplane import FakeControlPlane

from .shop import cart_service, proxy, shop


@pytest_asyncio.fixture
async def applied(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/apply", json={"manifests": [*shop(), cart_service("other")]})
    assert r.status_code == 200, r.text


@pytest.mark.asyncio
@pytest.mark.usefixtures("applied")
@pytest.mark.parametrize("kind", ["Service", "service", "services", "SERVICES", "svc"])
async def test_list_accepts_singular_plural_any_case_and_short(
    client: httpx.AsyncClient, kind: str
) -> None:
    r = await client.get(f"/v1/resources/{kind}")
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "Service"
    names = [(m["metadata"]["namespace"], m["metadata"]["name"]) for m in body["items"]]
    assert names == [("default", "cart"), ("default", "web"), ("other", "cart")]


@pytest.mark.asyncio
@pytest.mark.usefixtures("applied")
async def test_list_filters_by_namespace_and_lists_all_kinds(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/resources/services", params={"namespace": "other"})
    assert [m["metadata"]["namespace"] for m in r.json()["items"]] == ["other"]
    everything = await client.get("/v1/resources")
    assert everything.json()["kind"] is None
    assert sorted({m["kind"] for m in everything.json()["items"]}) == [
        "Route",
        "Service",
        "Workload",
    ]


@pytest.mark.asyncio
async def test_unknown_kind_is_400_naming_the_valid_kinds(client: httpx.AsyncClient) -> None:
    for path in ("/v1/resources/pods", "/v1/resources/pods/default/x"):
        r = await client.get(path)
        assert r.status_code == 400
        assert r.json()["code"] == "unknown_kind"
        assert r.json()["errors"] == [
            "kind: unknown kind 'pods': valid kinds are AccessPolicy, ExternalService, Gateway, "
            "Mesh, Route, Service, TrafficPolicy, Workload (singular or plural, any case)"
        ]
    r = await client.delete("/v1/resources/pods/default/x")
    assert r.status_code == 400


@pytest.mark.asyncio
@pytest.mark.usefixtures("applied")
async def test_get_returns_the_canonical_manifest(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/resources/workload/default/cart-1")
    assert r.status_code == 200
    m = r.json()
    assert m["kind"] == "Workload"
    assert m["spec"]["health"] == "healthy"  # defaults filled in


@pytest.mark.asyncio
@pytest.mark.usefixtures("applied")
async def test_get_missing_is_404_with_a_hint(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/resources/services/default/nope")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    assert r.json()["errors"] == [
        "Service default/nope does not exist: list what does with `gossamer get Service`"
    ]
    assert (await client.get("/v1/no-such-route")).status_code == 404


@pytest.mark.asyncio
@pytest.mark.usefixtures("applied")
async def test_delete_removes_and_bumps_the_revision(client: httpx.AsyncClient) -> None:
    r = await client.delete("/v1/resources/route/default/cart")
    assert r.status_code == 200
    assert r.json()["diff"]["deleted"] == ["Route default/cart"]
    assert r.json()["revision"] == 2
    assert (await client.get("/v1/resources/route/default/cart")).status_code == 404


@pytest.mark.asyncio
@pytest.mark.usefixtures("applied")
async def test_delete_of_a_referenced_resource_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.delete("/v1/resources/svc/default/cart")
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert any("Workload default/cart-1: spec.service: " in e for e in errors)
    assert any("Route default/cart: spec.service: " in e for e in errors)
    assert (await client.get("/v1/resources/svc/default/cart")).status_code == 200


@pytest.mark.asyncio
async def test_delete_missing_is_404(client: httpx.AsyncClient) -> None:
    r = await client.delete("/v1/resources/service/default/cart")
    assert r.status_code == 404


@pytest.mark.asyncio
@pytest.mark.usefixtures("applied")
async def test_batch_delete_is_atomic_and_wait_reports_acks(
    client: httpx.AsyncClient, fake: FakeControlPlane
) -> None:
    fake.add_proxy(proxy("cart-1"))
    keys = [
        {"kind": "route", "name": "cart"},
        {"kind": "workloads", "name": "cart-1"},
        {"kind": "svc", "namespace": "default", "name": "cart"},
    ]
    partial = await client.post("/v1/delete", json={"resources": keys[1:]})
    assert partial.status_code == 422  # the route still refers to the service
    r = await client.post("/v1/delete", json={"resources": keys, "wait": True})
    assert r.status_code == 200, r.text
    assert r.json()["diff"]["deleted"] == [
        "Route default/cart",
        "Workload default/cart-1",
        "Service default/cart",
    ]
    assert r.json()["ackedBy"] == ["sidecar~default~cart-1"]
    single = await client.delete("/v1/resources/svc/default/web", params={"wait": "true"})
    assert single.json()["ackedBy"] == []  # no proxy's config used the web service
    empty = await client.post("/v1/delete", json={"resources": []})
    assert empty.status_code == 422
