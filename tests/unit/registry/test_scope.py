"""What a host may register: the scope check as a plain function, and through the Registry
(refusals change nothing; an unpinned host's first registration fixes its address)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gossamer.errors import AuthError, PermissionDeniedError, ValidationError
from gossamer.model import Workload, parse_manifest
from gossamer.model.internal import AgentSpec, HostScope
from gossamer.registry import Registry
from gossamer.registry.scope import fixed_addresses, out_of_scope, parse_scope
from gossamer.types import ResourceKey

from .mesh import ANY, workload


def agent(scope: HostScope | None, addresses: list[str] | None = None) -> AgentSpec:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    return AgentSpec(
        host="vm-1",
        credentialSha256="0" * 64,
        joinedAt=now,
        lastSeen=now,
        token="jt-x",
        scope=scope,
        addresses=addresses or [],
    )


def wl(name: str, service: str = "reviews", **kw: Any) -> Workload:
    w = parse_manifest(workload(name, service, **kw))
    assert isinstance(w, Workload)
    return w


REVIEWS = HostScope(services=["reviews"])


def test_a_scope_must_say_what_the_host_may_serve() -> None:
    with pytest.raises(ValidationError) as neither:
        parse_scope({})
    (error,) = neither.value.errors
    assert "--service NAME" in str(error) and "--any-service" in str(error)
    with pytest.raises(ValidationError, match="not both"):
        parse_scope({"services": ["a"], "anyService": True})
    with pytest.raises(ValidationError, match="not both"):
        parse_scope({"anyService": True, "namespace": "x", "anyNamespace": True})
    with pytest.raises(ValidationError, match=r"scope.addresses\[0\]: '10.0.0.1/8' is not"):
        parse_scope({"anyService": True, "addresses": ["10.0.0.1/8"]})
    pinned = parse_scope({"services": ["a"], "addresses": ["127.0.0.5/32", "10.0.0.0/24"]})
    assert pinned.addresses == ["127.0.0.5", "10.0.0.0/24"]


def test_services_and_namespace() -> None:
    assert out_of_scope([wl("r-1"), wl("r-2")], agent(REVIEWS)) == []
    (web,) = out_of_scope([wl("r-1"), wl("web-1", "web")], agent(REVIEWS))
    assert web == (
        "Workload default/web-1: service default/web is outside what host vm-1's join token "
        "allows (service reviews in namespace default)"
    )
    (other_ns,) = out_of_scope([wl("r-1", namespace="shop")], agent(REVIEWS))
    assert "service shop/reviews is outside" in other_ns
    shop = HostScope(services=["reviews"], namespace="shop")
    assert out_of_scope([wl("r-1", namespace="shop")], agent(shop)) == []
    assert out_of_scope([wl("r-1")], agent(shop)) != []
    everywhere = HostScope(services=["reviews"], anyNamespace=True)
    assert out_of_scope([wl("r-1", namespace="shop"), wl("r-2")], agent(everywhere)) == []
    assert out_of_scope([wl("web-1", "web")], agent(everywhere)) != []
    assert out_of_scope([wl("web-1", "web")], agent(HostScope(anyService=True))) == []


def test_sidecarless_and_heavy_workloads_are_held_to_the_same_scope() -> None:
    raw = workload("web-1", "web")
    raw["spec"].update(sidecar=False, weight=100, ports=[{"port": 8080}])
    hijack = parse_manifest(raw)
    assert isinstance(hijack, Workload)
    assert out_of_scope([hijack], agent(REVIEWS)) != []
    assert out_of_scope([hijack], agent(HostScope(services=["web"]))) == []


def test_addresses() -> None:
    pinned = agent(REVIEWS, ["127.0.0.5", "10.0.0.0/24"])
    ok = [wl("r-1", address="127.0.0.5"), wl("r-2", address="10.0.0.77")]
    assert out_of_scope(ok, pinned) == []
    (elsewhere,) = out_of_scope([wl("r-3", address="127.0.0.6")], pinned)
    assert elsewhere == (
        "Workload default/r-3: address 127.0.0.6 is not host vm-1's (127.0.0.5, 10.0.0.0/24)"
    )
    # nothing fixed yet: any address, and the first registration fixes what it uses
    fresh = agent(REVIEWS)
    assert out_of_scope([wl("r-1", address="127.0.0.9")], fresh) == []
    first = [wl("r-1", address="127.0.0.9"), wl("r-2", address="127.0.0.8")]
    assert fixed_addresses(first, fresh) == ["127.0.0.8", "127.0.0.9"]
    assert fixed_addresses([], fresh) == []
    assert fixed_addresses(first, pinned) == ["127.0.0.5", "10.0.0.0/24"]


def test_an_agent_from_before_scopes_may_register_anything() -> None:
    legacy = agent(None)
    assert out_of_scope([wl("web-1", "web", address="10.1.2.3")], legacy) == []
    assert fixed_addresses([wl("web-1", "web")], legacy) == []


# -- through the Registry -------------------------------------------------------------------


async def joined(registry: Registry, scope: HostScope, host: str = "vm-1") -> str:
    token, _ = await registry.create_token(scope=scope)
    agent_id, _ = await registry.join(token, host)
    return agent_id


def workload_keys(registry: Registry) -> set[ResourceKey]:
    assert registry.plane.model is not None
    return {k for k in registry.plane.model.resources if k.kind == "Workload"}


@pytest.mark.asyncio
async def test_out_of_scope_registrations_are_refused_and_change_nothing(
    registry: Registry,
) -> None:
    agent_id = await joined(registry, HostScope(services=["catalog"]))
    await registry.set_workloads(agent_id, [workload("catalog-1", "catalog")])
    before = await registry.plane.store.revision()
    with pytest.raises(PermissionDeniedError) as refused:
        await registry.set_workloads(agent_id, [workload("cart-1", "cart")])
    assert "Workload default/cart-1: service default/cart is outside" in str(refused.value)
    assert "gossamer agents revoke" in str(refused.value)
    assert await registry.plane.store.revision() == before
    assert workload_keys(registry) == {ResourceKey("Workload", "default", "catalog-1")}


@pytest.mark.asyncio
async def test_the_first_registration_fixes_an_unpinned_hosts_address(
    registry: Registry,
) -> None:
    agent_id = await joined(registry, HostScope(services=["cart"]))
    assert registry.info(agent_id).addresses == []
    await registry.set_workloads(agent_id, [])  # an empty registration fixes nothing
    assert registry.info(agent_id).addresses == []
    await registry.set_workloads(agent_id, [workload("cart-1", address="127.0.0.4")])
    assert registry.info(agent_id).addresses == ["127.0.0.4"]
    before = await registry.plane.store.revision()
    with pytest.raises(PermissionDeniedError, match=r"address 127\.0\.0\.7 is not host vm-1's"):
        await registry.set_workloads(agent_id, [workload("cart-1", address="127.0.0.7")])
    assert await registry.plane.store.revision() == before
    # deregistering everything does not unfix it
    await registry.set_workloads(agent_id, [])
    with pytest.raises(PermissionDeniedError):
        await registry.set_workloads(agent_id, [workload("cart-2", address="127.0.0.7")])
    assert registry.info(agent_id).addresses == ["127.0.0.4"]


@pytest.mark.asyncio
async def test_a_pinned_address_comes_from_the_token(registry: Registry) -> None:
    scope = HostScope(services=["cart"], addresses=["127.0.0.5"])
    agent_id = await joined(registry, scope)
    assert registry.info(agent_id).addresses == ["127.0.0.5"]
    assert registry.list_tokens()[0].scope == scope
    with pytest.raises(PermissionDeniedError, match=r"address 127\.0\.0\.2 is not"):
        await registry.set_workloads(agent_id, [workload("cart-1", address="127.0.0.2")])
    await registry.set_workloads(agent_id, [workload("cart-1", address="127.0.0.5")])


@pytest.mark.asyncio
async def test_a_token_from_before_scopes_is_refused_at_join(registry: Registry) -> None:
    token, _ = await registry.create_token(scope=ANY)
    assert registry.plane.model is not None
    (record,) = [r for r in registry.plane.model.resources.values() if r.kind == "JoinToken"]
    manifest = record.to_manifest()
    del manifest["spec"]["scope"]
    await registry.plane.apply(
        [parse_manifest(manifest)], owner=manifest["spec"]["agentId"], internal=True
    )
    with pytest.raises(AuthError, match="--service NAME"):
        await registry.join(token, "vm-1")
