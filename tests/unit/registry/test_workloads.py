"""What agents register: their Workloads (one transaction, labelled, host-checked), health,
dependency addresses, and revocation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gossamer.errors import AuthError, ConflictError, NotFoundError, ValidationError
from gossamer.model import ModelSnapshot, Workload, parse_manifest
from gossamer.registry import MANAGED_BY_LABEL, Registry
from gossamer.types import OWNER_LABEL, ResourceKey

from .mesh import ANY, Clock, workload


def wl(name: str, namespace: str = "default") -> ResourceKey:
    return ResourceKey("Workload", namespace, name)


async def joined(registry: Registry, host: str = "vm-1") -> tuple[str, str]:
    token, _ = await registry.create_token(scope=ANY)
    return await registry.join(token, host)


def model(registry: Registry) -> ModelSnapshot:
    assert registry.plane.model is not None
    return registry.plane.model


def workload_of(registry: Registry, name: str) -> Workload:
    w = model(registry).resources[wl(name)]
    assert isinstance(w, Workload)
    return w


@pytest.mark.asyncio
async def test_workloads_are_labelled_and_the_host_filled_in(registry: Registry) -> None:
    agent_id, _ = await joined(registry)
    result = await registry.set_workloads(
        agent_id, [workload("cart-1", host=None), workload("cart-2", address="127.0.0.3")]
    )
    assert result.diff.created == [wl("cart-1"), wl("cart-2")]
    assert result.diff.updated == []  # the agent's own record is not reported
    w = workload_of(registry, "cart-1")
    assert w.metadata.labels == {MANAGED_BY_LABEL: "agent", OWNER_LABEL: agent_id}
    assert w.spec.host == "vm-1"


@pytest.mark.asyncio
async def test_the_set_is_replaced_in_one_transaction_and_idempotent(
    registry: Registry,
) -> None:
    agent_id, _ = await joined(registry)
    await registry.set_workloads(agent_id, [workload("cart-1"), workload("cart-2")])
    before = await registry.plane.store.revision()
    again = await registry.set_workloads(agent_id, [workload("cart-1"), workload("cart-2")])
    assert again.revision == before
    assert again.diff.unchanged == [wl("cart-1"), wl("cart-2")]

    result = await registry.set_workloads(agent_id, [workload("cart-3")])
    assert result.revision == before + 1
    assert result.diff.created == [wl("cart-3")]
    assert sorted(result.diff.deleted) == [wl("cart-1"), wl("cart-2")]
    assert [k.name for k in model(registry).resources if k.kind == "Workload"] == ["cart-3"]

    await registry.set_workloads(agent_id, [])
    assert not any(k.kind == "Workload" for k in model(registry).resources)


@pytest.mark.asyncio
async def test_bad_manifests_are_refused_naming_each_and_nothing_changes(
    registry: Registry,
) -> None:
    agent_id, _ = await joined(registry)
    await registry.set_workloads(agent_id, [workload("cart-1")])
    before = await registry.plane.store.revision()
    bad: list[Any] = [
        workload("cart-2", host="vm-9"),
        {**workload("x"), "kind": "Service"},
        "nope",
        workload("cart-3", "missing-service"),
        workload("cart-4"),
        workload("cart-4"),
    ]
    with pytest.raises(ValidationError) as info:
        await registry.set_workloads(agent_id, bad)
    lines = [str(e) for e in info.value.errors]
    assert lines == [
        "workloads[0]: Workload default/cart-2: spec.host: is 'vm-9', but this agent joined as "
        "host 'vm-1': an agent registers only its own host's workloads",
        "workloads[1].kind: an agent registers only Workloads, not 'Service'",
        "workloads[2]: must be a Workload manifest (a mapping)",
        "workloads[5]: Workload default/cart-4: metadata.name: is listed twice: give each "
        "Workload its own name",
    ]
    with pytest.raises(ValidationError, match="Service default/missing-service does not exist"):
        await registry.set_workloads(agent_id, [workload("cart-3", "missing-service")])
    assert await registry.plane.store.revision() == before
    assert wl("cart-1") in model(registry).resources


@pytest.mark.asyncio
async def test_workloads_of_others_cannot_be_overwritten(registry: Registry) -> None:
    a, _ = await joined(registry, "vm-1")
    b, _ = await joined(registry, "vm-2")
    await registry.set_workloads(a, [workload("cart-1")])
    with pytest.raises(ConflictError, match=f"registered by agent {a}"):
        await registry.set_workloads(b, [workload("cart-1", host="vm-2")])

    await registry.plane.apply([parse_manifest(workload("mine", host=None))])
    with pytest.raises(ConflictError, match=r"registered by a user \(gossamer apply\)") as user:
        await registry.set_workloads(a, [workload("mine")])
    # the advice fits a user's workload: who owns it and how to hand it over, no revoking
    assert "revoke" not in str(user.value)
    assert "gossamer delete workload mine -n default" in str(user.value)

    user_copy = workload("cart-1")
    with pytest.raises(ConflictError, match=f"registered by agent {a}") as agents:
        await registry.plane.apply([parse_manifest(user_copy)])
    assert f"gossamer agents revoke {a}" in str(agents.value)
    assert workload_of(registry, "cart-1").metadata.labels[OWNER_LABEL] == a


@pytest.mark.asyncio
async def test_health_changes_only_the_agents_workloads(registry: Registry) -> None:
    a, _ = await joined(registry, "vm-1")
    b, _ = await joined(registry, "vm-2")
    await registry.set_workloads(a, [workload("cart-1"), workload("cart-2")])
    await registry.set_workloads(b, [workload("cart-9", host="vm-2")])

    result = await registry.set_health(a, {"cart-1": "draining", "default/cart-2": "unhealthy"})
    assert sorted(result.diff.updated) == [wl("cart-1"), wl("cart-2")]
    assert workload_of(registry, "cart-1").spec.health == "draining"
    assert workload_of(registry, "cart-2").spec.health == "unhealthy"
    assert workload_of(registry, "cart-1").metadata.labels[OWNER_LABEL] == a

    before = await registry.plane.store.revision()
    with pytest.raises(ValidationError) as info:
        await registry.set_health(a, {"cart-9": "healthy", "cart-1": "sick"})
    assert [str(e) for e in info.value.errors] == [
        f"workloads.cart-9: agent {a} has no Workload 'cart-9'; its workloads are: "
        "default/cart-1, default/cart-2",
        "workloads.cart-1: 'sick' is not a health: use one of healthy, unhealthy, draining",
    ]
    assert await registry.plane.store.revision() == before


@pytest.mark.asyncio
async def test_env_gives_each_dependency_its_stable_local_address(registry: Registry) -> None:
    agent_id, _ = await joined(registry)
    deps: list[dict[str, Any]] = [
        {"service": "catalog"},
        {"service": "reviews", "port": "grpc"},
        {"service": "reviews", "port": "http", "localAddress": "127.0.0.77", "localPort": 7000},
    ]
    await registry.set_workloads(agent_id, [workload("web-1", "cart", dependencies=deps)])
    (env,) = registry.env(agent_id)
    snap = model(registry)
    catalog = snap.local_addresses[("default", "catalog")]
    reviews = snap.local_addresses[("default", "reviews")]
    assert (env.namespace, env.name, env.service) == ("default", "web-1", "cart")
    assert [(d.service, d.port_name, d.protocol, d.address, d.port) for d in env.dependencies] == [
        ("catalog", "http", "http", catalog, 9090),
        ("reviews", "grpc", "grpc", reviews, 9001),
        ("reviews", "http", "http", "127.0.0.77", 7000),
    ]
    assert env.env == {
        "CATALOG_HOST": catalog,
        "CATALOG_PORT": "9090",
        "CATALOG_ADDR": f"{catalog}:9090",
        "REVIEWS_GRPC_HOST": reviews,
        "REVIEWS_GRPC_PORT": "9001",
        "REVIEWS_GRPC_ADDR": f"{reviews}:9001",
        "REVIEWS_HTTP_HOST": "127.0.0.77",
        "REVIEWS_HTTP_PORT": "7000",
        "REVIEWS_HTTP_ADDR": "127.0.0.77:7000",
    }


@pytest.mark.asyncio
async def test_revoke_deletes_workloads_and_revokes_in_one_transaction(
    registry: Registry, clock: Clock
) -> None:
    a, cred_a = await joined(registry, "vm-1")
    b, cred_b = await joined(registry, "vm-2")
    await registry.set_workloads(a, [workload("cart-1"), workload("cart-2")])
    await registry.set_workloads(b, [workload("cart-9", host="vm-2")])
    before = await registry.plane.store.revision()

    (revoked,) = await registry.revoke("vm-1")
    assert (revoked.agent_id, revoked.host) == (a, "vm-1")
    assert revoked.deleted == [wl("cart-1"), wl("cart-2")]
    assert await registry.plane.store.revision() == before + 1
    assert [k.name for k in model(registry).resources if k.kind == "Workload"] == ["cart-9"]
    with pytest.raises(AuthError, match=f"agent {a} \\(host vm-1\\) was revoked at"):
        await registry.authenticate(a, cred_a)
    with pytest.raises(AuthError, match="was revoked"):
        await registry.set_workloads(a, [workload("cart-1")])
    await registry.authenticate(b, cred_b)

    again = await registry.revoke(a)
    assert again[0].deleted == []
    assert await registry.plane.store.revision() == before + 1
    with pytest.raises(NotFoundError, match="has no active agent"):
        await registry.revoke("vm-1")
    with pytest.raises(NotFoundError, match="no agent or host is named 'vm-7'"):
        await registry.revoke("vm-7")
    infos = {i.agent_id: i for i in registry.list_agents()}
    assert infos[a].revoked and infos[a].revoked_at == clock.now and infos[a].workloads == []
    assert not infos[b].revoked and infos[b].workloads == [wl("cart-9")]


@pytest.mark.asyncio
async def test_revoke_racing_a_registration_leaves_no_workloads(registry: Registry) -> None:
    for i in range(5):
        agent_id, _ = await joined(registry, f"vm-{i}")
        results = await asyncio.gather(
            registry.set_workloads(agent_id, [workload(f"w-{i}", host=f"vm-{i}")]),
            registry.revoke(agent_id),
            return_exceptions=True,
        )
        assert all(
            r is None or not isinstance(r, Exception) or isinstance(r, AuthError) for r in results
        )
        assert wl(f"w-{i}") not in model(registry).resources
