"""The engine over the control plane: persistence across restarts, files vs commands vs
obligations, one writer (journal through ``ControlPlane.apply``) and one watcher (the plane
tells the engine), and a failed write (a full disk) that changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.unit.authz.planes import authz_plane, fresh_engine

from gossamer.authz.command_journal import JOURNAL_NAMESPACE, to_command
from gossamer.authz.engine import AuthzEngine
from gossamer.authz.pap import JournalEntry
from gossamer.authz.snapshot import dump
from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import AccessDeniedError, StoreError, ValidationError
from gossamer.model import parse_manifest
from gossamer.model.access_commands import parse_commands
from gossamer.model.access_policy import AccessCommand, AccessPolicy
from gossamer.polling import wait_until
from gossamer.store.memory import MemoryStore
from gossamer.store.sqlite import SQLiteStore
from gossamer.testing.mesh import service
from gossamer.types import ResourceKey


def policy(name: str, **spec: Any) -> AccessPolicy:
    return AccessPolicy.model_validate(
        {
            "apiVersion": "gossamer.dev/v1",
            "kind": "AccessPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


SHOP = policy(
    "shop",
    policyClasses=["mesh"],
    userAttributes={"workloads": ["mesh"], "web": ["workloads"]},
    objectAttributes={"services": ["mesh"], "cart": ["services"]},
    users={"spiffe://m/ns/default/sa/web": ["web"]},
    objects={"cart:/items": ["cart"]},
    associations=[
        {"userAttribute": "web", "target": "cart", "rights": ["GET"]},
        {"userAttribute": "gossamer:admins", "target": "services", "rights": ["*a"]},
        {"userAttribute": "gossamer:admins", "target": "workloads", "rights": ["*a"]},
    ],
    obligations=[
        {
            "name": "new-carts-readable",
            "author": "admin",
            "event": {"operations": ["create_object"], "targets": ["services"]},
            "response": [
                {
                    "op": "associate",
                    "userAttribute": "web",
                    "target": "{target}",
                    "rights": ["POST"],
                }
            ],
        }
    ],
)
WEB = "spiffe://m/ns/default/sa/web"


async def apply(
    plane: ControlPlane,
    engine: AuthzEngine,
    policies: Sequence[AccessPolicy],
    deletes: Sequence[ResourceKey] = (),
) -> None:
    """Apply (or delete) policies as ``gossamer apply`` does; return once the engine has
    rebuilt from them (at once if nothing changed)."""
    rebuilds = engine.rebuilds
    result = await plane.apply(policies, deletes=deletes)
    if result.diff.created or result.diff.updated or result.diff.deleted:
        await wait_until(lambda: engine.rebuilds > rebuilds, what="the engine to rebuild")


def create(name: str, parent: str = "cart") -> list[Any]:
    return parse_commands([{"op": "create_object", "name": name, "parents": [parent]}])


class ListJournal:
    """A journal in a list: all an engine needs to keep its entries."""

    def __init__(self) -> None:
        self.entries: list[AccessCommand] = []

    async def append(self, entries: Sequence[AccessCommand]) -> int:
        self.entries.extend(entries)
        return len(self.entries)


@pytest.mark.asyncio
async def test_the_engine_needs_no_store() -> None:
    journal = ListJournal()
    first = await AuthzEngine.open(journal, [], revision=0)
    assert [c.metadata.name for c in journal.entries] == ["c-0000000001"]  # the bootstrap
    assert first.graph.find("admin") is not None
    engine = await AuthzEngine.open(journal, [SHOP, *journal.entries], revision=1)
    await engine.execute("admin", create("cart:/checkout"))
    assert engine.check(WEB, "cart:/checkout", "POST")  # the obligation fired
    assert [c.spec.cause for c in journal.entries] == [
        "bootstrap",
        "admin",
        "obligation:new-carts-readable",
    ]
    again = await AuthzEngine.open(journal, [SHOP, *journal.entries], revision=3)
    assert dump(again.graph) == dump(engine.graph)
    assert len(journal.entries) == 3  # a journal exists: no second bootstrap


@pytest.mark.asyncio
async def test_persists_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with authz_plane(await SQLiteStore.open(path)) as (plane, engine):
        await apply(plane, engine, [SHOP])
        await engine.execute("admin", create("cart:/checkout"))
        assert engine.check(WEB, "cart:/checkout", "POST")  # the obligation fired
        before = dump(engine.graph)

    async with authz_plane(await SQLiteStore.open(path)) as (plane, again):
        assert dump(again.graph) == before
        assert again.check(WEB, "cart:/checkout", "POST")
        assert again.privileges(WEB, "cart:/items") == ["GET"]
        assert len(again.pap.obligations) == 1


@pytest.mark.asyncio
async def test_journal_goes_through_admission_as_an_internal_kind() -> None:
    async with authz_plane() as (plane, engine):
        await apply(plane, engine, [SHOP])
        await engine.execute("admin", create("cart:/checkout"))
        assert plane.model is not None
        names = sorted(k.name for k in plane.model.resources if k.kind == "AccessCommand")
        assert names == ["c-0000000001", "c-0000000002", "c-0000000003"]
        assert [m["metadata"]["name"] for m in await plane.list("AccessCommand")] == names
        # users cannot write the journal: it is the control plane's own kind
        forged = to_command("c-0000000009", JournalEntry(None, "admin", tuple(create("x"))))
        with pytest.raises(ValidationError, match="kept by the control plane"):
            await plane.apply([forged])


@pytest.mark.asyncio
async def test_reapplying_a_file_keeps_what_an_obligation_did() -> None:
    async with authz_plane() as (plane, engine):
        await apply(plane, engine, [SHOP])
        await engine.execute("admin", create("cart:/checkout"))
        assert engine.check(WEB, "cart:/checkout", "POST")
        changed = SHOP.model_copy(
            update={
                "spec": SHOP.spec.model_copy(
                    update={"objects": {"cart:/items": ["cart"], "cart:/more": ["cart"]}}
                )
            }
        )
        await apply(plane, engine, [changed])
        assert engine.check(WEB, "cart:/checkout", "POST")  # obligation's grant survives
        assert engine.check(WEB, "cart:/more", "GET")  # the file's change is in
        rebuilds = engine.rebuilds
        await apply(plane, engine, [changed])  # identical re-apply: nothing changes
        assert engine.rebuilds == rebuilds
        assert engine.check(WEB, "cart:/checkout", "POST")
        assert engine.statistics().skipped_journal_entries == ()


@pytest.mark.asyncio
async def test_journal_entry_that_no_longer_applies_is_reported() -> None:
    async with authz_plane() as (plane, engine):
        await apply(plane, engine, [SHOP])
        await engine.execute("admin", create("cart:/checkout"))
        spec = SHOP.spec.model_copy(
            update={
                "objectAttributes": {"services": ["mesh"]},
                "objects": {},
                "associations": SHOP.spec.associations[1:],
            }
        )
        await apply(plane, engine, [SHOP.model_copy(update={"spec": spec})])
        skipped = engine.statistics().skipped_journal_entries
        assert len(skipped) == 2
        assert "'cart'" in skipped[0]


@pytest.mark.asyncio
async def test_bad_policy_is_not_stored() -> None:
    async with authz_plane() as (plane, engine):
        bad = policy("bad", objectAttributes={"x": ["nowhere"]})
        rev = await plane.store.revision()
        with pytest.raises(ValidationError, match="nowhere"):
            await plane.apply([bad])
        assert await plane.store.revision() == rev
        assert engine.graph.find("x") is None


@pytest.mark.asyncio
async def test_denied_or_unstored_batch_changes_nothing() -> None:
    store = MemoryStore()
    async with authz_plane(store) as (plane, engine):
        vault = policy("vault", objectAttributes={"vault": ["mesh"], "secrets": ["vault"]})
        await apply(plane, engine, [SHOP, vault])
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
        first = {"op": "create_object", "name": "cart:/reports", "parents": ["cart"]}
        with pytest.raises(AccessDeniedError):
            await engine.execute(
                "admin",
                parse_commands(
                    [first, {"op": "create_object", "name": "s", "parents": ["secrets"]}]
                ),
            )
        decisions_work()
        with pytest.raises(ValidationError):
            await engine.execute(
                "admin",
                parse_commands(
                    [first, {"op": "assign", "child": "cart:/reports", "parents": ["web"]}]
                ),
            )
        decisions_work()
        assert dump(engine.graph) == before and await store.revision() == rev

        async def broken(*args: object, **kwargs: object) -> int:
            raise StoreError("disk full")

        store.apply = broken  # type: ignore[method-assign]
        with pytest.raises(StoreError):
            await engine.execute("admin", create("cart:/checkout"))
        del store.apply  # type: ignore[method-assign]
        assert dump(engine.graph) == before
        assert engine.pap.journal == []
        decisions_work()


async def _fill_the_disk(store: SQLiteStore, plane: ControlPlane) -> None:
    """Let the store's file grow no more, then fill its free pages: every later write
    that needs a page fails with SQLITE_FULL, as on a full disk."""

    def cap() -> None:
        conn = store._db.conn
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages}")

    await store._call(cap)
    for i in range(1000):
        try:
            await plane.apply([parse_manifest(service(f"filler-{i:04d}-{'x' * 40}"))])
        except StoreError as e:
            assert "full" in str(e)
            return
    raise AssertionError("the store never filled up")


@pytest.mark.asyncio
async def test_a_full_disk_changes_nothing(tmp_path: Path) -> None:
    """docs/ngac.md: durable first, then replayed; a store that cannot write (SQLite's
    SQLITE_FULL on a real file) leaves the engine, its decisions and the store as they were,
    for an administrative batch and for a policy apply alike."""
    store = await SQLiteStore.open(tmp_path / "store.db")
    async with authz_plane(store) as (plane, engine):
        await apply(plane, engine, [SHOP])
        await _fill_the_disk(store, plane)
        before, rev = dump(engine.graph), await store.revision()
        journal = await plane.list("AccessCommand", JOURNAL_NAMESPACE)
        with pytest.raises(StoreError, match="disk is full"):
            await engine.execute("admin", create("cart:/checkout"))
        more = policy("more", objectAttributes={"more": ["mesh"]}, objects={"m": ["more"]})
        with pytest.raises(StoreError, match="disk is full"):
            await plane.apply([more])
        assert dump(engine.graph) == before
        assert engine.pap.journal == [] and engine.graph.find("cart:/checkout") is None
        assert engine.privileges(WEB, "cart:/items") == ["GET"]
        assert await store.revision() == rev
        assert await plane.list("AccessCommand", JOURNAL_NAMESPACE) == journal

        def free() -> None:
            store._db.conn.execute("PRAGMA max_page_count = 1073741823")

        await store._call(free)  # space again: the same batch goes through
        await engine.execute("admin", create("cart:/checkout"))
        assert engine.check(WEB, "cart:/checkout", "POST")
    fresh = await fresh_engine(await SQLiteStore.open(tmp_path / "store.db"))
    assert fresh.check(WEB, "cart:/checkout", "POST")


@pytest.mark.asyncio
async def test_several_policies_merge() -> None:
    async with authz_plane() as (plane, engine):
        extra = policy(
            "extra",
            accessRights=["GET", "POST"],
            userAttributes={"web": ["mesh"]},
            associations=[{"userAttribute": "web", "target": "cart", "rights": ["POST"]}],
        )
        await apply(plane, engine, [SHOP, extra])
        assert engine.privileges(WEB, "cart:/items") == ["GET", "POST"]
        await apply(plane, engine, [], deletes=[extra.key])
        assert engine.privileges(WEB, "cart:/items") == ["GET"]


@pytest.mark.asyncio
async def test_follows_changes_others_write_to_the_store() -> None:
    """Another writer of the store (a second replica): the plane's one watch tells the
    engine, which rebuilds; its own journal entries, told back, change nothing."""
    store = MemoryStore()
    async with authz_plane(store) as (_, engine):
        await store.apply(puts=[SHOP.to_manifest()])
        await wait_until(lambda: engine.graph.find(WEB) is not None, what="the policy to load")
        assert engine.check(WEB, "cart:/items", "GET")
        # a policy that does not make a graph keeps the previous one in force
        await store.apply(puts=[policy("broken", users={"x": ["no-such-attribute"]}).to_manifest()])
        await wait_until(lambda: engine.load_error is not None, what="the load error")
        assert "no-such-attribute" in (engine.load_error or "")
        assert engine.check(WEB, "cart:/items", "GET")
        await store.apply(deletes=[policy("broken").key])
        await wait_until(lambda: engine.load_error is None, what="the rebuild after the fix")
        # the engine's own writes are told back at once and do not trigger rebuilds
        before, rebuilds = engine.graph, engine.rebuilds
        await engine.execute("admin", create("cart:/x"))
        assert not engine.rebuild_pending
        assert engine.graph is before and engine.graph.find("cart:/x") is not None
        # another replica's journal entry is replayed
        entry = JournalEntry("admin", "admin", tuple(create("cart:/y")))
        theirs = to_command("c-0000000100", entry)
        await store.apply(puts=[theirs.to_manifest()])
        await wait_until(lambda: engine.graph.find("cart:/y") is not None, what="their entry")
        assert engine.rebuilds == rebuilds + 1
        assert engine.check(WEB, "cart:/y", "GET")
        # a replayed entry fires no obligation: the replica that ran the batch journals the
        # responses as entries of their own
        assert not engine.check(WEB, "cart:/y", "POST")


@pytest.mark.asyncio
async def test_decisions_do_not_see_a_change_before_it_is_durable() -> None:
    store = MemoryStore()
    async with authz_plane(store) as (plane, engine):
        await apply(plane, engine, [SHOP])
        real_apply = store.apply
        writing, release = asyncio.Event(), asyncio.Event()

        async def slow_apply(*args: Any, **kwargs: Any) -> int:
            writing.set()
            await release.wait()
            return await real_apply(*args, **kwargs)

        store.apply = slow_apply  # type: ignore[method-assign]
        grant = parse_commands(
            [
                {
                    "op": "associate",
                    "userAttribute": "web",
                    "target": "cart",
                    "rights": ["GET", "DELETE"],
                }
            ]
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(engine.execute("admin", grant))
            await writing.wait()
            assert not engine.check(WEB, "cart:/items", "DELETE")  # not durable yet
            release.set()
        assert engine.check(WEB, "cart:/items", "DELETE")


@pytest.mark.asyncio
async def test_start_with_a_broken_stored_policy_denies_everything() -> None:
    store = MemoryStore()
    await store.apply(
        puts=[
            SHOP.to_manifest(),
            policy("broken", users={"x": ["no-such-attribute"]}).to_manifest(),
        ]
    )
    async with authz_plane(store) as (plane, engine):
        assert "no-such-attribute" in (engine.load_error or "")
        assert engine.graph.find(WEB) is None
        assert engine.graph.find("admin") is not None  # the administrator can still work
        await apply(plane, engine, [], deletes=[policy("broken").key])
        assert engine.check(WEB, "cart:/items", "GET")
        assert engine.load_error is None
