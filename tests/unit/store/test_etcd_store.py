"""What the etcd store adds to the contract: watches across etcd restarts, compaction by
another replica, the store's identity (issue 7's R1) and etcd's transaction limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aetcd.rpc as rpc  # type: ignore[import-untyped]
import pytest
import pytest_asyncio
from store_helpers import DEADLINE, manifest, revisions, take

from gossamer.errors import ConflictError, StoreError
from gossamer.store.base import Change
from gossamer.store.etcd import EtcdStore
from gossamer.store.etcd_identity import MARKER_NAME, identity_key
from gossamer.testing.etcd import EtcdServer, etcd_installed

pytestmark = pytest.mark.skipif(
    not etcd_installed(), reason="no etcd binary (Debian's etcd-server; scripts/install)"
)


@pytest_asyncio.fixture
async def etcd(tmp_path: Path) -> AsyncIterator[EtcdServer]:
    server = EtcdServer(tmp_path / "etcd")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _items(batches: list[list[Change]]) -> list[str]:
    return [change.key.name for batch in batches for change in batch]


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_a_watch_misses_and_repeats_nothing_across_etcd_restarts(
    etcd: EtcdServer, how: str
) -> None:
    """etcd dies (SIGKILL or SIGTERM) twice while a watcher is mid-stream and a writer keeps
    writing: the watcher sees every transaction once, in order."""
    store = await EtcdStore.open(etcd.url)
    watch = store.watch(0)
    total = 30

    async def write() -> None:
        for i in range(total):
            await store.apply([manifest("Item", f"item-{i}", n=i)])  # retries while etcd is down
            if i in (9, 19):
                await (etcd.kill() if how == "kill" else etcd.stop())
                await etcd.start()

    async with asyncio.timeout(DEADLINE * 2), asyncio.TaskGroup() as tasks:
        tasks.create_task(write())
        batches = await take(watch, total)
    assert revisions(batches) == list(range(1, total + 1))
    assert _items(batches) == [f"item-{i}" for i in range(total)]
    # nothing more arrives: no batch was held back or repeated
    await store.apply([manifest("Item", "last")])
    [[last]] = await take(watch, 1)
    assert (last.key.name, last.revision) == ("last", total + 1)
    await store.close()


@pytest.mark.asyncio
async def test_writes_made_while_the_watch_is_down_are_delivered_once(etcd: EtcdServer) -> None:
    """The watch stream breaks with nothing to read; by the time it is back, another
    client wrote: the resumed watch starts exactly after what it delivered."""
    store = await EtcdStore.open(etcd.url)
    other = await EtcdStore.open(etcd.url)
    watch = store.watch(0)
    await store.apply([manifest("Item", "a")])
    assert revisions(await take(watch, 1)) == [1]
    await etcd.kill()
    pending = asyncio.ensure_future(take(watch, 3))
    await etcd.start()
    for name in ("b", "c", "d"):
        await other.apply([manifest("Item", name)])
    batches = await pending
    assert revisions(batches) == [2, 3, 4] and _items(batches) == ["b", "c", "d"]
    await other.close()
    await store.close()


@pytest.mark.asyncio
async def test_a_watch_from_a_revision_another_replica_compacted(etcd: EtcdServer) -> None:
    """Another replica (a smaller history) compacted etcd: this one's watch fails with the
    store's ConflictError ('list again'), and a store opened afterwards knows the point."""
    store = await EtcdStore.open(etcd.url)
    other = await EtcdStore.open(etcd.url, history=2)
    for i in range(6):
        await other.apply([manifest("Item", f"i{i}")])
    await store.revision()
    with pytest.raises(ConflictError, match="list again"):
        await take(store.watch(0), 1)
    later = await EtcdStore.open(etcd.url)
    assert later.statistics().compact_revision == 4
    with pytest.raises(ConflictError, match="list again"):
        later.watch(3)
    assert revisions(await take(later.watch(4), 2)) == [5, 6]
    for s in (store, other, later):
        await s.close()


@pytest.mark.asyncio
async def test_a_lost_etcd_is_refused_when_a_marker_remembers_the_store(
    etcd: EtcdServer, tmp_path: Path
) -> None:
    marker = tmp_path / "data" / MARKER_NAME
    marker.parent.mkdir()
    store = await EtcdStore.open(etcd.url, marker=marker)
    await store.apply([manifest("Service", "cart")])
    await store.close()
    assert store.store_id in marker.read_text()
    # reopening the same store is fine
    await (await EtcdStore.open(etcd.url, marker=marker)).close()
    # another prefix (or cluster) holds no such store: refused, naming the marker
    with pytest.raises(StoreError, match=f"no store identity.*delete {marker}"):
        await EtcdStore.open(f"{etcd.url}/other", marker=marker)
    # another store's identity: refused
    await (await EtcdStore.open(f"{etcd.url}/other")).close()
    with pytest.raises(StoreError, match="records store"):
        await EtcdStore.open(f"{etcd.url}/other", marker=marker)
    # etcd's data lost: refused; deleting the marker starts afresh on purpose
    await etcd.stop()
    for path in sorted((etcd.workdir / "data").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    await etcd.start()
    with pytest.raises(StoreError, match="etcd's data was lost"):
        await EtcdStore.open(etcd.url, marker=marker)
    marker.unlink()
    fresh = await EtcdStore.open(etcd.url, marker=marker)
    assert await fresh.list() == ([], 0) and fresh.store_id in marker.read_text()
    await fresh.close()


@pytest.mark.asyncio
async def test_a_store_that_loses_its_identity_key_refuses_writes(etcd: EtcdServer) -> None:
    store = await EtcdStore.open(etcd.url)
    await store.apply([manifest("Service", "cart")])
    key = identity_key(store.keys.prefix)
    await store.connection.call("DeleteRange", rpc.DeleteRangeRequest(key=key))
    with pytest.raises(StoreError, match="lost its identity key"):
        await store.apply([manifest("Service", "shop")])
    with pytest.raises(StoreError, match="lost its identity key"):
        await store.revision()
    assert [r.key.name for r in (await store.list())[0]] == ["cart"]
    await store.close()
    # resources without an identity key: refused at open too
    with pytest.raises(StoreError, match="holds 1 resources but no store identity"):
        await EtcdStore.open(etcd.url)


@pytest.mark.asyncio
async def test_an_apply_of_thousands_of_resources_is_one_transaction(etcd: EtcdServer) -> None:
    """With the recommended --max-txn-ops (etcd's default is 128 operations)."""
    store = await EtcdStore.open(etcd.url)
    many = [manifest("Service", f"svc-{i}", port=80) for i in range(3000)]
    assert await store.apply(many) == 1
    items, revision = await store.list(kind="Service")
    assert len(items) == 3000 and revision == 1
    assert {r.revision for r in items} == {1}
    await store.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("limits", "puts", "flag"),
    [
        ({"max_txn_ops": 50}, [manifest("Service", f"s{i}") for i in range(60)], "--max-txn-ops"),
        (
            {"max_request_bytes": 64 * 1024},
            [manifest("Service", "big", blob="x" * 100_000)],
            "--max-request-bytes",
        ),
    ],
)
async def test_beyond_etcds_limits_an_apply_fails_clearly(
    tmp_path: Path, limits: dict[str, int], puts: list[dict[str, object]], flag: str
) -> None:
    server = EtcdServer(tmp_path / "small-etcd", **limits)
    await server.start()
    try:
        store = await EtcdStore.open(server.url)
        with pytest.raises(StoreError, match=f"etcd server's {flag}.*nothing was written"):
            await store.apply(puts)
        assert await store.revision() == 0
        await store.close()
    finally:
        await server.stop()
