"""The engine in the store: persistence across restarts, files vs commands vs obligations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gossamer.authz.engine import AuthzEngine
from gossamer.authz.snapshot import dump
from gossamer.errors import AccessDeniedError, StoreError, ValidationError
from gossamer.model.access_commands import parse_commands
from gossamer.model.access_policy import AccessPolicy
from gossamer.store.memory import MemoryStore
from gossamer.store.sqlite import SQLiteStore


def policy(name: str, **spec: Any) -> AccessPolicy:
    return AccessPolicy.model_validate({"apiVersion": "gossamer.dev/v1", "kind": "AccessPolicy",
                                        "metadata": {"name": name}, "spec": spec})


SHOP = policy(
    "shop", policyClasses=["mesh"],
    userAttributes={"workloads": ["mesh"], "web": ["workloads"]},
    objectAttributes={"services": ["mesh"], "cart": ["services"]},
    users={"spiffe://m/ns/default/sa/web": ["web"]},
    objects={"cart:/items": ["cart"]},
    associations=[{"userAttribute": "web", "target": "cart", "rights": ["GET"]},
                  {"userAttribute": "gossamer:admins", "target": "services", "rights": ["*a"]},
                  {"userAttribute": "gossamer:admins", "target": "workloads",
                   "rights": ["*a"]}],
    obligations=[{
        "name": "new-carts-readable", "author": "admin",
        "event": {"operations": ["create_object"], "targets": ["services"]},
        "response": [{"op": "associate", "userAttribute": "web", "target": "{target}",
                      "rights": ["POST"]}]}])
WEB = "spiffe://m/ns/default/sa/web"


@pytest.mark.asyncio
async def test_persists_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await SQLiteStore.open(path)
    engine = await AuthzEngine.open(store)
    await engine.apply_policies([SHOP])
    await engine.execute("admin", parse_commands([
        {"op": "create_object", "name": "cart:/checkout", "parents": ["cart"]}]))
    assert engine.check(WEB, "cart:/checkout", "POST")  # the obligation fired
    before = dump(engine.graph)
    await store.close()

    store = await SQLiteStore.open(path)
    again = await AuthzEngine.open(store)
    assert dump(again.graph) == before
    assert again.check(WEB, "cart:/checkout", "POST")
    assert again.privileges(WEB, "cart:/items") == ["GET"]
    assert len(again.pap.obligations) == 1
    await store.close()


@pytest.mark.asyncio
async def test_reapplying_a_file_keeps_what_an_obligation_did() -> None:
    engine = await AuthzEngine.open(MemoryStore())
    await engine.apply_policies([SHOP])
    await engine.execute("admin", parse_commands([
        {"op": "create_object", "name": "cart:/checkout", "parents": ["cart"]}]))
    assert engine.check(WEB, "cart:/checkout", "POST")
    changed = SHOP.model_copy(update={"spec": SHOP.spec.model_copy(
        update={"objects": {"cart:/items": ["cart"], "cart:/more": ["cart"]}})})
    await engine.apply_policies([changed])
    assert engine.check(WEB, "cart:/checkout", "POST")  # obligation's grant survives
    assert engine.check(WEB, "cart:/more", "GET")  # the file's change is in
    await engine.apply_policies([changed])  # identical re-apply: nothing changes
    assert engine.check(WEB, "cart:/checkout", "POST")
    assert engine.statistics()["skipped_journal_entries"] == []


@pytest.mark.asyncio
async def test_journal_entry_that_no_longer_applies_is_reported() -> None:
    engine = await AuthzEngine.open(MemoryStore())
    await engine.apply_policies([SHOP])
    await engine.execute("admin", parse_commands([
        {"op": "create_object", "name": "cart:/checkout", "parents": ["cart"]}]))
    spec = SHOP.spec.model_copy(update={
        "objectAttributes": {"services": ["mesh"]}, "objects": {},
        "associations": SHOP.spec.associations[1:]})
    await engine.apply_policies([SHOP.model_copy(update={"spec": spec})])
    skipped = engine.statistics()["skipped_journal_entries"]
    assert isinstance(skipped, list) and len(skipped) == 2
    assert "'cart'" in skipped[0]


@pytest.mark.asyncio
async def test_bad_policy_is_not_stored() -> None:
    store = MemoryStore()
    engine = await AuthzEngine.open(store)
    bad = policy("bad", objectAttributes={"x": ["nowhere"]})
    rev = await store.revision()
    with pytest.raises(ValidationError, match="nowhere"):
        await engine.apply_policies([bad])
    assert await store.revision() == rev


@pytest.mark.asyncio
async def test_denied_or_unstored_batch_changes_nothing() -> None:
    store = MemoryStore()
    engine = await AuthzEngine.open(store)
    vault = policy("vault", objectAttributes={"vault": ["mesh"], "secrets": ["vault"]})
    await engine.apply_policies([SHOP, vault])
    before, rev = dump(engine.graph), await store.revision()
    with pytest.raises(AccessDeniedError):
        await engine.execute(WEB, parse_commands([{"op": "create_policy_class", "name": "x"}]))
    assert dump(engine.graph) == before and await store.revision() == rev

    def decisions_work() -> None:  # the caches hold nothing about the undone nodes
        assert engine.privileges(WEB, "cart:/items") == ["GET"]
        assert engine.access(WEB) == {"cart": ["GET"], "cart:/items": ["GET"]}
        assert engine.explain(WEB, "cart:/items").policyClasses[0].rights == ["GET"]

    # refused part-way (issue 7 D2): the first command created a node, the second is
    # denied (the administrator holds no right on "secrets") or invalid
    create = {"op": "create_object", "name": "cart:/reports", "parents": ["cart"]}
    with pytest.raises(AccessDeniedError):
        await engine.execute("admin", parse_commands([
            create, {"op": "create_object", "name": "s", "parents": ["secrets"]}]))
    decisions_work()
    with pytest.raises(ValidationError):
        await engine.execute("admin", parse_commands([
            create, {"op": "assign", "child": "cart:/reports", "parents": ["web"]}]))
    decisions_work()
    assert dump(engine.graph) == before and await store.revision() == rev

    async def broken(*args: object, **kwargs: object) -> int:
        raise StoreError("disk full")

    store.apply = broken  # type: ignore[method-assign]
    with pytest.raises(StoreError):
        await engine.execute("admin", parse_commands([
            {"op": "create_object", "name": "cart:/checkout", "parents": ["cart"]}]))
    assert dump(engine.graph) == before
    assert engine.pap.journal == []
    decisions_work()


@pytest.mark.asyncio
async def test_several_policies_merge() -> None:
    engine = await AuthzEngine.open(MemoryStore())
    extra = policy("extra", accessRights=["GET", "POST"], userAttributes={"web": ["mesh"]},
                   associations=[{"userAttribute": "web", "target": "cart",
                                  "rights": ["POST"]}])
    await engine.apply_policies([SHOP, extra])
    assert engine.privileges(WEB, "cart:/items") == ["GET", "POST"]
    await engine.delete_policies([("default", "extra")])
    assert engine.privileges(WEB, "cart:/items") == ["GET"]


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_follows_policies_written_to_the_store_by_others() -> None:
    store = MemoryStore()
    engine = await AuthzEngine.open(store)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(engine.run())
        await store.apply(puts=[SHOP.to_manifest()])  # e.g. `gossamer apply`
        await _until(lambda: engine.graph.find(WEB) is not None, "the policy to load")
        assert engine.check(WEB, "cart:/items", "GET")
        # a policy that does not make a graph keeps the previous one in force
        await store.apply(puts=[policy("broken", users={"x": ["no-such-attribute"]})
                                .to_manifest()])
        await _until(lambda: engine.load_error is not None, "the load error")
        assert "no-such-attribute" in (engine.load_error or "")
        assert engine.check(WEB, "cart:/items", "GET")
        await store.apply(deletes=[policy("broken").key])
        await _until(lambda: engine.load_error is None, "the rebuild after the fix")
        # the engine's own writes do not trigger rebuilds
        before = engine.graph
        await engine.execute("admin", parse_commands([
            {"op": "create_object", "name": "cart:/x", "parents": ["cart"]}]))
        marker = await store.apply(puts=[{"apiVersion": "gossamer.dev/v1", "kind": "Marker",
                                          "metadata": {"name": "m"}, "spec": {}}])
        await _until(lambda: engine.statistics()["revision"] == marker, "the watch to catch up")
        assert engine.graph is before and engine.graph.find("cart:/x") is not None
        task.cancel()


@pytest.mark.asyncio
async def test_decisions_do_not_see_a_change_before_it_is_durable() -> None:
    store = MemoryStore()
    engine = await AuthzEngine.open(store)
    await engine.apply_policies([SHOP])
    real_apply = store.apply
    writing, release = asyncio.Event(), asyncio.Event()

    async def slow_apply(*args: Any, **kwargs: Any) -> int:
        writing.set()
        await release.wait()
        return await real_apply(*args, **kwargs)

    store.apply = slow_apply  # type: ignore[method-assign]
    grant = parse_commands([{"op": "associate", "userAttribute": "web", "target": "cart",
                             "rights": ["GET", "DELETE"]}])
    async with asyncio.TaskGroup() as tg:
        tg.create_task(engine.execute("admin", grant))
        await writing.wait()
        assert not engine.check(WEB, "cart:/items", "DELETE")  # not durable yet
        release.set()
    assert engine.check(WEB, "cart:/items", "DELETE")


@pytest.mark.asyncio
async def test_start_with_a_broken_stored_policy_denies_everything() -> None:
    store = MemoryStore()
    await store.apply(puts=[SHOP.to_manifest(),
                            policy("broken", users={"x": ["no-such-attribute"]}).to_manifest()])
    engine = await AuthzEngine.open(store)
    assert "no-such-attribute" in (engine.load_error or "")
    assert engine.graph.find(WEB) is None
    assert engine.graph.find("admin") is not None  # the administrator can still work
    await store.apply(deletes=[policy("broken").key])
    await engine.reload()
    assert engine.check(WEB, "cart:/items", "GET")
    assert engine.load_error is None
