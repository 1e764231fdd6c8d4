"""``gossamer.testing.FakeControlPlane`` keeps the promises of ``ControlPlaneService``."""

from __future__ import annotations

import pytest

from gossamer.controlplane.service import ControlPlaneService
from gossamer.errors import NotFoundError, StoreError, ValidationError, WaitTimeoutError
from gossamer.model import Resource, parse_manifest
from gossamer.testing.fake_controlplane import FakeControlPlane
from gossamer.types import ResourceKey

from .shop import cart_route, cart_service, cart_workload, changed, proxy, shop, web_service


def parsed(*manifests: dict[str, object]) -> list[Resource]:
    return [parse_manifest(m) for m in manifests]


def test_it_is_a_control_plane_service() -> None:
    service: ControlPlaneService = FakeControlPlane()
    assert service.proxy_status() == []


@pytest.mark.asyncio
async def test_revisions_move_only_when_something_changes() -> None:
    fake = FakeControlPlane()
    assert (await fake.apply(parsed(*shop()))).revision == 1
    assert (await fake.apply(parsed(*shop()))).revision == 1
    result = await fake.apply(parsed(changed(web_service(), ports=[{"name": "h", "port": 81}])))
    assert result.revision == 2
    assert result.diff.updated == [ResourceKey("Service", "default", "web")]
    assert (await fake.get(ResourceKey("Service", "default", "web")))["spec"]["ports"][0][
        "port"
    ] == 81


@pytest.mark.asyncio
async def test_an_inconsistent_apply_changes_nothing() -> None:
    fake = FakeControlPlane()
    with pytest.raises(ValidationError) as info:
        await fake.apply(parsed(web_service(), cart_workload()))
    assert [e.path for e in info.value.errors] == ["spec.service"]
    assert await fake.list() == []
    assert fake.revision == 0


@pytest.mark.asyncio
async def test_the_same_key_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match="given twice"):
        await FakeControlPlane().apply(parsed(cart_service(), cart_service()))


@pytest.mark.asyncio
async def test_delete_checks_existence_and_references() -> None:
    fake = FakeControlPlane()
    await fake.apply(parsed(*shop()))
    with pytest.raises(NotFoundError):
        await fake.delete([ResourceKey("Service", "default", "nope")])
    with pytest.raises(ValidationError) as info:
        await fake.delete([ResourceKey("Service", "default", "cart")])
    assert "delete or change Workload default/cart-1 in the same request" in str(info.value)
    route = ResourceKey("Route", "default", "cart")
    result = await fake.delete([route, route])
    assert result.diff.deleted == [route]
    assert result.revision == 2


@pytest.mark.asyncio
async def test_list_filters_and_validate_reports() -> None:
    fake = FakeControlPlane()
    await fake.apply(parsed(*shop()))
    assert [m["kind"] for m in await fake.list("Route")] == ["Route"]
    assert await fake.list(namespace="other") == []
    assert await fake.validate(parsed(cart_route())) == []
    [error] = await fake.validate(parsed(changed(cart_workload(), service="nope")))
    assert error.startswith("Workload default/cart-1: spec.service: Service default/nope")


@pytest.mark.asyncio
async def test_wait_and_failure_injection() -> None:
    fake = FakeControlPlane()
    fake.add_proxy(proxy("a"))
    assert (await fake.apply(parsed(web_service()), wait=True)).acked_by == ["sidecar~default~a"]
    fake.add_proxy(proxy("b"), acks=False)
    with pytest.raises(WaitTimeoutError, match="revision 2 is stored"):
        await fake.apply(parsed(cart_service()), wait=True, wait_timeout=0.01)
    assert fake.revision == 2
    fake.fail_next(StoreError("disk full"))
    with pytest.raises(StoreError):
        await fake.apply(parsed(changed(web_service(), ports=[{"name": "h", "port": 1}])))
    assert fake.revision == 2
    fake.remove_proxy("sidecar~default~b")
    with pytest.raises(NotFoundError):
        fake.remove_proxy("sidecar~default~b")
    assert fake.statistics()["proxies"] == 1
