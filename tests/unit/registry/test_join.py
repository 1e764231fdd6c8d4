"""Join tokens: single use, expiring, stored only as hashes; joining creates an Agent."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import AuthError, ConflictError, ValidationError
from gossamer.model import parse_manifest
from gossamer.registry import REGISTRY_NAMESPACE, Agent, JoinToken, Registry
from gossamer.types import OWNER_LABEL, ResourceKey

from .mesh import ANY, Clock


async def stored_text(plane: ControlPlane) -> str:
    stored, _ = await plane.store.list()
    return json.dumps([s.manifest for s in stored])


@pytest.mark.asyncio
async def test_token_is_stored_only_as_a_hash(registry: Registry, clock: Clock) -> None:
    token, expires = await registry.create_token(timedelta(minutes=10), scope=ANY)
    assert len(token) >= 43
    assert expires == clock.now + timedelta(minutes=10)
    assert token not in await stored_text(registry.plane)
    (info,) = registry.list_tokens()
    assert info.state == "unused"
    assert info.expires_at == expires
    assert info.agent_id.startswith("agent-")


@pytest.mark.asyncio
async def test_join_uses_the_token_and_creates_the_agent_in_one_transaction(
    registry: Registry, clock: Clock
) -> None:
    token, _ = await registry.create_token(scope=ANY)
    before = await registry.plane.store.revision()
    agent_id, credential = await registry.join(token, "vm-1")
    assert await registry.plane.store.revision() == before + 1

    agent = await registry.plane.store.get(ResourceKey("Agent", REGISTRY_NAMESPACE, agent_id))
    (jt,) = registry.list_tokens()
    assert agent is not None
    assert agent.revision == before + 1
    assert agent.manifest["spec"]["host"] == "vm-1"
    assert agent.manifest["metadata"]["labels"] == {OWNER_LABEL: agent_id}
    assert jt.state == "used"
    assert jt.used_by == "vm-1"
    assert jt.used_at == clock.now
    assert jt.agent_id == agent_id
    text = await stored_text(registry.plane)
    assert credential not in text and token not in text
    assert (await registry.authenticate(agent_id, credential)).spec.host == "vm-1"


@pytest.mark.asyncio
async def test_a_used_token_is_refused_and_nothing_changes(registry: Registry) -> None:
    token, _ = await registry.create_token(scope=ANY)
    await registry.join(token, "vm-1")
    before = await registry.plane.store.revision()
    with pytest.raises(AuthError, match=r"already used \(by host vm-1"):
        await registry.join(token, "vm-2")
    assert await registry.plane.store.revision() == before
    assert [a.host for a in registry.list_agents()] == ["vm-1"]


@pytest.mark.asyncio
async def test_an_expired_token_is_refused(registry: Registry, clock: Clock) -> None:
    token, _ = await registry.create_token(timedelta(seconds=60), scope=ANY)
    clock.advance(60)
    with pytest.raises(AuthError, match="expired at 2030-01-01T12:01:00"):
        await registry.join(token, "vm-1")
    assert registry.list_tokens()[0].state == "expired"
    assert registry.list_agents() == []


@pytest.mark.asyncio
async def test_an_unknown_token_is_refused(registry: Registry) -> None:
    token, _ = await registry.create_token(scope=ANY)
    with pytest.raises(AuthError, match="not known to this control plane"):
        await registry.join(token[:-1] + ("A" if token[-1] != "A" else "B"), "vm-1")
    with pytest.raises(AuthError, match="not known"):
        await registry.join("", "vm-1")


@pytest.mark.asyncio
async def test_ttl_out_of_range_is_refused(registry: Registry) -> None:
    for ttl in (timedelta(0), timedelta(days=31)):
        with pytest.raises(ValidationError, match="ttlSeconds"):
            await registry.create_token(ttl, scope=ANY)
    assert registry.list_tokens() == []


@pytest.mark.asyncio
async def test_concurrent_joins_with_one_token_let_exactly_one_in(registry: Registry) -> None:
    token, _ = await registry.create_token(scope=ANY)
    results = await asyncio.gather(
        *(registry.join(token, f"vm-{i}") for i in range(5)), return_exceptions=True
    )
    joined = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, AuthError)]
    assert len(joined) == 1 and len(refused) == 4
    assert len(registry.list_agents()) == 1


@pytest.mark.asyncio
async def test_a_host_with_an_active_agent_cannot_join_again(registry: Registry) -> None:
    first, _ = await registry.create_token(scope=ANY)
    second, _ = await registry.create_token(scope=ANY)
    await registry.join(first, "vm-1")
    with pytest.raises(ConflictError, match="gossamer agents revoke vm-1"):
        await registry.join(second, "vm-1")
    assert {t.state for t in registry.list_tokens()} == {"used", "unused"}
    await registry.revoke("vm-1")
    agent_id, _ = await registry.join(second, "vm-1")
    assert [a.revoked for a in registry.list_agents() if a.agent_id == agent_id] == [False]


@pytest.mark.asyncio
async def test_credentials_are_checked(registry: Registry) -> None:
    a, cred_a = await registry.join((await registry.create_token(scope=ANY))[0], "vm-1")
    b, cred_b = await registry.join((await registry.create_token(scope=ANY))[0], "vm-2")
    with pytest.raises(AuthError, match=f"not agent {a}'s"):
        await registry.authenticate(a, cred_b)
    with pytest.raises(AuthError, match="no agent 'agent-nope'"):
        await registry.authenticate("agent-nope", cred_a)
    assert (await registry.authenticate(b, cred_b)).metadata.name == b


@pytest.mark.asyncio
async def test_heartbeats_write_nothing_and_last_seen_is_kept_in_memory(
    registry: Registry, clock: Clock
) -> None:
    """Issue 7 R5: lastSeen was a store write every 30 s per agent (eating the revision
    history); heartbeats now live in memory and the agent listing shows them."""
    agent_id, cred = await registry.join((await registry.create_token(scope=ANY))[0], "vm-1")
    joined_at = clock.now
    revision = await registry.plane.store.revision()
    for _ in range(10):
        clock.advance(31)
        await registry.authenticate(agent_id, cred)
        await registry.set_health(agent_id, {})
    assert await registry.plane.store.revision() == revision
    (info,) = registry.list_agents()
    assert info.last_seen == clock.now and info.joined_at == joined_at
    assert info.state == "active"


@pytest.mark.asyncio
async def test_users_cannot_apply_or_delete_registry_records(registry: Registry) -> None:
    agent_id, _ = await registry.join((await registry.create_token(scope=ANY))[0], "vm-1")
    key = ResourceKey("Agent", REGISTRY_NAMESPACE, agent_id)
    assert registry.plane.model is not None
    record = registry.plane.model.resources[key]
    assert isinstance(record, Agent)
    forged = record.to_manifest()
    forged["metadata"]["labels"] = {}
    forged["spec"]["revoked"] = True
    with pytest.raises(ValidationError, match="kept by the control plane itself"):
        await registry.plane.apply([parse_manifest(forged)])
    with pytest.raises(ConflictError, match=f"registered by agent {agent_id}"):
        await registry.plane.delete([key])
    model = registry.plane.model
    token_key = next(k for k in model.resources if k.kind == "JoinToken")
    with pytest.raises(ConflictError):
        await registry.plane.delete([token_key])
    assert registry.plane.model is not None
    assert isinstance(registry.plane.model.resources[token_key], JoinToken)


@pytest.mark.asyncio
async def test_expired_unused_tokens_are_pruned_after_a_day(
    registry: Registry, clock: Clock
) -> None:
    await registry.create_token(timedelta(minutes=1), scope=ANY)
    used, _ = await registry.create_token(timedelta(minutes=1), scope=ANY)
    await registry.join(used, "vm-1")
    clock.advance(2 * 86400)
    await registry.create_token(scope=ANY)
    assert sorted(t.state for t in registry.list_tokens()) == ["unused", "used"]
