"""POST /v1/apply and POST /v1/validate against the in-memory control plane."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gossamer.errors import ConflictError, StoreError
from gossamer.testing.fake_controlplane import FakeControlPlane

from .shop import cart_route, cart_service, cart_workload, changed, proxy, shop, web_service


async def apply(client: httpx.AsyncClient, manifests: list[Any], **opts: Any) -> httpx.Response:
    return await client.post("/v1/apply", json={"manifests": manifests, **opts})


@pytest.mark.asyncio
async def test_apply_creates_then_reports_unchanged_and_updated(
    client: httpx.AsyncClient,
) -> None:
    first = await apply(client, shop())
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["revision"] == 1
    assert body["diff"]["created"] == [
        "Service default/cart",
        "Service default/web",
        "Workload default/cart-1",
        "Route default/cart",
    ]
    assert body["ackedBy"] == []

    again = (await apply(client, shop())).json()
    assert again["revision"] == 1
    assert len(again["diff"]["unchanged"]) == 4
    assert again["diff"]["created"] == again["diff"]["updated"] == []

    moved = (await apply(client, [changed(cart_workload(), address="127.0.0.3")])).json()
    assert moved["revision"] == 2
    assert moved["diff"]["updated"] == ["Workload default/cart-1"]


@pytest.mark.asyncio
async def test_dry_run_reports_the_diff_and_stores_nothing(client: httpx.AsyncClient) -> None:
    r = await apply(client, shop(), dryRun=True)
    assert r.status_code == 200
    assert len(r.json()["diff"]["created"]) == 4
    assert r.json()["revision"] == 0
    listed = await client.get("/v1/resources")
    assert listed.json()["items"] == []


@pytest.mark.asyncio
async def test_field_error_names_file_resource_and_field_and_applies_nothing(
    client: httpx.AsyncClient,
) -> None:
    r = await apply(
        client,
        [cart_service(), cart_route(weight=101)],
        sources=["services.yaml", "route.yaml"],
    )
    assert r.status_code == 422
    assert r.json()["code"] == "validation"
    assert r.json()["errors"] == [
        "route.yaml: Route default/cart: spec.rules[0].destinations[0].weight: must be 0..100"
    ]
    assert (await client.get("/v1/resources")).json()["items"] == []


@pytest.mark.asyncio
async def test_reference_error_is_named_by_its_source(client: httpx.AsyncClient) -> None:
    r = await apply(client, [cart_workload()], sources=["cart.yaml"])
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error.startswith("cart.yaml: Workload default/cart-1: spec.service: ")
    assert "Service default/cart does not exist" in error


@pytest.mark.asyncio
async def test_without_sources_manifests_are_named_by_position(client: httpx.AsyncClient) -> None:
    bad = changed(cart_service(), ports=[{"name": "http", "port": 0}])
    r = await apply(client, [web_service(), bad])
    assert r.status_code == 422
    assert r.json()["errors"] == [
        "manifests[1]: Service default/cart: spec.ports[0].port: must be 1..65535"
    ]


@pytest.mark.asyncio
async def test_unknown_kind_in_a_manifest_names_the_valid_kinds(client: httpx.AsyncClient) -> None:
    m = cart_service()
    m["kind"] = "Servce"
    r = await apply(client, [m], sources=["a.yaml"])
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error.startswith("a.yaml: Servce default/cart: kind: unknown kind 'Servce'")
    assert "Gateway, Mesh, Route, Service, TrafficPolicy, Workload" in error


@pytest.mark.asyncio
async def test_a_resource_given_twice_is_refused(client: httpx.AsyncClient) -> None:
    r = await apply(client, [cart_service(), cart_service()], sources=["a.yaml", "b.yaml"])
    assert r.status_code == 422
    assert r.json()["errors"] == ["b.yaml: Service default/cart: defined twice (also in a.yaml)"]


@pytest.mark.asyncio
async def test_sources_must_match_manifests(client: httpx.AsyncClient) -> None:
    r = await apply(client, shop(), sources=["one.yaml"])
    assert r.status_code == 422
    assert r.json()["errors"] == [
        "sources: has 1 entries for 4 manifests: give one source per manifest, or none"
    ]


@pytest.mark.asyncio
async def test_malformed_bodies_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/apply", json={"manifests": "cart"})
    assert r.status_code == 422
    assert r.json()["code"] == "request"
    assert r.json()["errors"][0].startswith("body.manifests: ")

    r = await client.post("/v1/apply", json={"manifests": [], "waitTimeout": -1})
    assert r.status_code == 422
    assert r.json()["errors"][0].startswith("body.waitTimeout: ")

    r = await client.post(
        "/v1/apply", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


@pytest.mark.asyncio
async def test_wait_returns_the_proxies_that_acked(
    client: httpx.AsyncClient, fake: FakeControlPlane
) -> None:
    fake.add_proxy(proxy("cart-1"))
    fake.add_proxy(proxy("gone", connected=False))
    r = await apply(client, shop(), wait=True, waitTimeout=5)
    assert r.status_code == 200
    assert r.json()["ackedBy"] == ["sidecar~default~cart-1"]


@pytest.mark.asyncio
async def test_wait_timeout_is_504_and_says_the_change_is_stored(
    client: httpx.AsyncClient, fake: FakeControlPlane
) -> None:
    fake.add_proxy(proxy("cart-1"), acks=False)
    r = await apply(client, shop(), wait=True, waitTimeout=0.01)
    assert r.status_code == 504
    body = r.json()
    assert body["code"] == "wait_timeout"
    assert body["stored"] is True
    assert body["errors"] == [
        "the change is stored (revision 1) but 1 proxies have not ACKed it within 0.01 s: "
        "sidecar~default~cart-1; see `gossamer proxy-status`"
    ]
    stored = await client.get("/v1/resources/Service/default/cart")
    assert stored.status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (StoreError("disk full: free space and retry"), 503, "store"),
        (ConflictError("revision moved: retry"), 409, "conflict"),
    ],
)
async def test_store_and_conflict_errors_map_and_nothing_is_stored(
    client: httpx.AsyncClient,
    fake: FakeControlPlane,
    error: Exception,
    status: int,
    code: str,
) -> None:
    assert isinstance(error, StoreError | ConflictError)
    fake.fail_next(error)
    r = await apply(client, shop())
    assert r.status_code == status
    assert r.json() == {"errors": [str(error)], "code": code, "stored": False}
    assert (await client.get("/v1/resources")).json()["items"] == []


@pytest.mark.asyncio
async def test_validate_reports_without_changing_anything(client: httpx.AsyncClient) -> None:
    ok = await client.post("/v1/validate", json={"manifests": shop()})
    assert ok.json() == {"valid": True, "errors": []}

    refs = await client.post(
        "/v1/validate", json={"manifests": [cart_route()], "sources": ["route.yaml"]}
    )
    assert refs.status_code == 200
    assert refs.json()["valid"] is False
    assert refs.json()["errors"][0].startswith("route.yaml: Route default/cart: spec.service: ")

    fields = await client.post(
        "/v1/validate", json={"manifests": [cart_route(weight=-1)], "sources": ["route.yaml"]}
    )
    assert fields.json()["errors"] == [
        "route.yaml: Route default/cart: spec.rules[0].destinations[0].weight: must be 0..100"
    ]
    assert (await client.get("/v1/resources")).json()["items"] == []


@pytest.mark.asyncio
async def test_changes_wait_while_the_control_plane_loads(
    client: httpx.AsyncClient, fake: FakeControlPlane
) -> None:
    fake.ready = False
    for r in (
        await apply(client, shop()),
        await client.post("/v1/validate", json={"manifests": shop()}),
        await client.delete("/v1/resources/svc/default/cart"),
        await client.post("/v1/delete", json={"resources": [{"kind": "svc", "name": "cart"}]}),
    ):
        assert r.status_code == 503
        assert r.json()["code"] == "not_ready"
        assert r.json()["errors"] == [
            "the control plane is still loading its state; retry in a moment"
        ]
    assert fake.revision == 0
    # reads come from the store: they are answered while loading
    assert (await client.get("/v1/resources")).status_code == 200
    assert (await client.get("/v1/resources/svc")).status_code == 200
    fake.ready = True
    assert (await apply(client, shop())).status_code == 200
