"""The promises of ``ControlPlaneService``, kept alike by ``gossamer.testing.FakeControlPlane``
and the real ``ControlPlane`` over the memory store (the ``contract`` fixture runs each test
against both), so tests written against the fake hold for the real thing."""

from __future__ import annotations

import dataclasses

import pytest

from gossamer.controlplane.service import ControlPlaneService, ControlPlaneStatistics
from gossamer.errors import NotFoundError, StoreError, ValidationError, WaitTimeoutError
from gossamer.model import Resource, parse_manifest
from gossamer.testing.fake_controlplane import FakeControlPlane
from gossamer.types import OWNER_LABEL, ResourceKey

from .conftest import Contract
from .shop import cart_route, cart_service, cart_workload, changed, manifest, shop, web_service


def parsed(*manifests: dict[str, object]) -> list[Resource]:
    return [parse_manifest(m) for m in manifests]


def web_workload() -> dict[str, object]:
    """web-1, which calls cart."""
    deps = [{"service": "cart", "localAddress": "127.0.0.3", "localPort": 9001}]
    spec = {"service": "web", "address": "127.0.0.3", "ports": [{"port": 15006, "appPort": 80}]}
    return manifest("Workload", "web-1", {**spec, "dependencies": deps})


def test_it_is_a_control_plane_service() -> None:
    service: ControlPlaneService = FakeControlPlane()
    assert service.proxy_status() == []


@pytest.mark.asyncio
async def test_revisions_move_only_when_something_changes(contract: Contract) -> None:
    fake = contract.service
    assert (await fake.apply(parsed(*shop()))).revision == 1
    assert (await fake.apply(parsed(*shop()))).revision == 1
    result = await fake.apply(parsed(changed(web_service(), ports=[{"name": "h", "port": 81}])))
    assert result.revision == 2
    assert result.diff.updated == [ResourceKey("Service", "default", "web")]
    assert (await fake.get(ResourceKey("Service", "default", "web")))["spec"]["ports"][0][
        "port"
    ] == 81


@pytest.mark.asyncio
async def test_an_inconsistent_apply_changes_nothing(contract: Contract) -> None:
    fake = contract.service
    with pytest.raises(ValidationError) as info:
        await fake.apply(parsed(web_service(), cart_workload()))
    assert [e.path for e in info.value.errors] == ["spec.service"]
    assert await fake.list() == []
    assert contract.revision == 0


@pytest.mark.asyncio
async def test_the_same_key_twice_is_refused(contract: Contract) -> None:
    with pytest.raises(ValidationError, match="more than once in one apply"):
        await contract.service.apply(parsed(cart_service(), cart_service()))
    assert contract.revision == 0


@pytest.mark.asyncio
async def test_delete_checks_existence_and_references(contract: Contract) -> None:
    fake = contract.service
    await fake.apply(parsed(*shop()))
    with pytest.raises(NotFoundError):
        await fake.delete([ResourceKey("Service", "default", "nope")])
    with pytest.raises(ValidationError) as info:
        await fake.delete([ResourceKey("Service", "default", "cart")])
    assert "cannot delete Service default/cart: Workload default/cart-1: spec.service" in str(
        info.value
    )
    assert await fake.get(ResourceKey("Service", "default", "cart"))
    route = ResourceKey("Route", "default", "cart")
    with pytest.raises(ValidationError, match="more than once"):
        await fake.delete([route, route])
    assert contract.revision == 1
    result = await fake.delete([route])
    assert result.diff.deleted == [route]
    assert result.revision == 2


@pytest.mark.asyncio
async def test_list_filters_and_validate_reports(contract: Contract) -> None:
    fake = contract.service
    await fake.apply(parsed(*shop()))
    assert [m["kind"] for m in await fake.list("Route")] == ["Route"]
    assert await fake.list(namespace="other") == []
    assert await fake.validate(parsed(cart_route())) == []
    [error] = await fake.validate(parsed(changed(cart_workload(), service="nope")))
    assert error.startswith("Workload default/cart-1: spec.service: Service default/nope")


@pytest.mark.asyncio
async def test_wait_names_the_proxies_whose_config_changed(contract: Contract) -> None:
    fake = contract.service
    await fake.apply(parsed(*shop(), web_workload()))
    await contract.add_proxy("cart-1")
    await contract.add_proxy("web-1")
    # cart-1's own app port: only its config changes
    moved = changed(cart_workload(), ports=[{"port": 15006, "appPort": 8081}])
    assert (await fake.apply(parsed(moved), wait=True)).acked_by == ["sidecar~default~cart-1"]
    # a second cart instance: web-1 (which calls cart) gets its endpoint
    result = await fake.apply(parsed(cart_workload("cart-2", "127.0.0.5")), wait=True)
    assert result.acked_by == ["sidecar~default~web-1"]
    # a label nobody selects on changes no proxy's config: nothing to wait for
    labelled = changed(cart_workload("cart-2", "127.0.0.5"))
    labelled["metadata"]["labels"] = {"team": "blue"}
    assert (await fake.apply(parsed(labelled), wait=True)).acked_by == []
    # nothing changed at all: no new revision, nothing waited for
    revision = contract.revision
    assert (await fake.apply(parsed(moved), wait=True)).revision == revision


@pytest.mark.asyncio
async def test_wait_times_out_on_a_proxy_that_does_not_ack(contract: Contract) -> None:
    fake = contract.service
    await fake.apply(parsed(*shop()))
    await contract.add_proxy("cart-1", acks=False)
    revision = contract.revision
    moved = changed(cart_workload(), ports=[{"port": 15006, "appPort": 8081}])
    with pytest.raises(WaitTimeoutError, match=f"revision {revision + 1}.*sidecar~default~cart-1"):
        await fake.apply(parsed(moved), wait=True, wait_timeout=0.2)
    assert contract.revision == revision + 1  # stored all the same
    await contract.remove_proxy("sidecar~default~cart-1")
    with pytest.raises(NotFoundError):
        await contract.remove_proxy("sidecar~default~cart-1")
    assert fake.proxy_status() == [] or not fake.proxy_status()[0].connected


@pytest.mark.asyncio
async def test_a_failed_write_changes_nothing(contract: Contract) -> None:
    fake = contract.service
    await fake.apply(parsed(*shop()))
    contract.fail_next(StoreError("disk full"))
    with pytest.raises(StoreError):
        await fake.apply(parsed(changed(web_service(), ports=[{"name": "h", "port": 1}])))
    assert contract.revision == 1
    assert (await fake.get(ResourceKey("Service", "default", "web")))["spec"]["ports"][0][
        "port"
    ] == 80
    contract.fail_next(StoreError("disk full"))
    with pytest.raises(StoreError):
        await fake.delete([ResourceKey("Route", "default", "cart")])
    assert len(await fake.list("Route")) == 1 and contract.revision == 1


@pytest.mark.asyncio
async def test_users_cannot_forge_agent_ownership(contract: Contract) -> None:
    forged = cart_workload()
    forged["metadata"]["labels"] = {OWNER_LABEL: "agent-1"}
    with pytest.raises(ValidationError, match=f"metadata.labels.{OWNER_LABEL}"):
        await contract.service.apply(parsed(cart_service(), forged))
    assert contract.revision == 0


@pytest.mark.asyncio
async def test_statistics_are_one_frozen_dataclass(contract: Contract) -> None:
    fake = contract.service
    await fake.apply(parsed(*shop()))
    await contract.add_proxy("cart-1")
    await contract.add_proxy("other-1")  # connected, then gone: not counted
    await contract.remove_proxy("sidecar~default~other-1")
    stats = fake.statistics()
    assert type(stats) is ControlPlaneStatistics
    assert (stats.ready, stats.revision, stats.resources) == (True, contract.revision, 4)
    assert stats.connected_proxies == 1
    assert (stats.store.revision, stats.store.resources) == (stats.revision, stats.resources)
    assert stats.store.watchers == (0 if isinstance(fake, FakeControlPlane) else 1)
    assert (stats.xds.nodes, stats.xds.snapshots) == (1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.revision = 0  # type: ignore[misc]
