"""What a rollback would change, computed from each backend's kept history."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gossamer.backup.history import plan_rollback
from gossamer.errors import ValidationError
from gossamer.store.base import Store
from gossamer.store.etcd import EtcdStore
from gossamer.store.memory import MemoryStore
from gossamer.store.sqlite import SQLiteStore
from gossamer.testing.etcd import EtcdServer, etcd_installed
from gossamer.types import OWNER_LABEL, Manifest, ResourceKey

MakeStore = Callable[[int], Awaitable[Store]]


@pytest_asyncio.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("etcd", marks=pytest.mark.skipif(not etcd_installed(), reason="no etcd")),
    ]
)
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStore]:
    opened: list[Store] = []
    etcd = EtcdServer(tmp_path / "etcd") if request.param == "etcd" else None
    if etcd is not None:
        await etcd.start()

    async def make(history: int) -> Store:
        store: Store
        if request.param == "memory":
            store = MemoryStore(history=history)
        elif etcd is not None:
            store = await EtcdStore.open(f"{etcd.url}/s{len(opened)}", history=history)
        else:
            store = await SQLiteStore.open(tmp_path / f"s{len(opened)}.db", history=history)
        opened.append(store)
        return store

    try:
        yield make
    finally:
        for s in opened:
            await s.close()
        if etcd is not None:
            await etcd.stop()


def res(
    kind: str, name: str, ns: str = "default", owner: str | None = None, **spec: Any
) -> Manifest:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if owner:
        meta["labels"] = {OWNER_LABEL: owner}
    return {"apiVersion": "gossamer.dev/v1", "kind": kind, "metadata": meta, "spec": spec}


async def _now(store: Store) -> tuple[dict[ResourceKey, Manifest], int]:
    stored, revision = await store.list()
    return {s.key: s.manifest for s in stored}, revision


@pytest.mark.asyncio
async def test_users_resources_go_back_and_agents_stay(make_store: MakeStore) -> None:
    store = await make_store(10_000)
    route = ResourceKey("Route", "default", "web")
    gone = ResourceKey("Route", "default", "old")
    await store.apply([res("Route", "web", v=1), res("Route", "old", v=1)])
    target = await store.apply([res("Route", "web", v=2)])
    await store.apply([res("Route", "web", v=3), res("Route", "new", v=1)], [gone])
    await store.apply([res("Workload", "w1", owner="agent-1", v=1)])
    await store.apply([res("AccessCommand", "c-0000000001", ns="gossamer-system", v=1)])
    current, revision = await _now(store)
    plan = await plan_rollback(store, target, current, revision)
    assert [(k, m["spec"]) for k, m in plan.created] == [(gone, {"v": 1})]
    assert [(k, n["spec"], t["spec"]) for k, n, t in plan.updated] == [(route, {"v": 3}, {"v": 2})]
    assert [k for k, _ in plan.deleted] == [ResourceKey("Route", "default", "new")]
    assert [s.key for s in plan.skipped] == [ResourceKey("Workload", "default", "w1")]
    assert (plan.to_revision, plan.from_revision) == (target, revision)


@pytest.mark.asyncio
async def test_a_user_workload_is_rolled_back_an_agents_never(make_store: MakeStore) -> None:
    store = await make_store(10_000)
    await store.apply([res("Workload", "mine", v=1), res("Workload", "its", owner="a", v=1)])
    target = await store.revision()
    await store.apply([res("Workload", "mine", v=2), res("Workload", "its", owner="a", v=2)])
    current, revision = await _now(store)
    plan = await plan_rollback(store, target, current, revision)
    assert [k.name for k, _, _ in plan.updated] == ["mine"]
    assert [s.key.name for s in plan.skipped] == ["its"]


@pytest.mark.asyncio
async def test_the_current_revision_changes_nothing(make_store: MakeStore) -> None:
    store = await make_store(10_000)
    revision = await store.apply([res("Route", "web", v=1)])
    plan = await plan_rollback(store, revision, *await _now(store))
    assert plan.empty


@pytest.mark.asyncio
async def test_a_revision_older_than_history_is_refused_naming_the_oldest(
    make_store: MakeStore,
) -> None:
    store = await make_store(3)
    for v in range(6):
        await store.apply([res("Route", "web", v=v)])
    current, revision = await _now(store)
    oldest = store.statistics().compact_revision
    assert oldest > 1
    with pytest.raises(ValidationError, match=f"the oldest revision to roll back to is {oldest}"):
        await plan_rollback(store, oldest - 1, current, revision)
    with pytest.raises(ValidationError, match="in the future"):
        await plan_rollback(store, revision + 5, current, revision)


@pytest.mark.asyncio
async def test_a_state_written_before_the_kept_history_is_refused(make_store: MakeStore) -> None:
    store = await make_store(3)
    await store.apply([res("Route", "web", v=0)])
    for v in range(4):
        await store.apply([res("Route", "other", v=v)])
    target = await store.revision()
    await store.apply([res("Route", "web", v=1)])
    current, revision = await _now(store)
    with pytest.raises(ValidationError, match="Route default/web was changed at revision"):
        await plan_rollback(store, target, current, revision)
