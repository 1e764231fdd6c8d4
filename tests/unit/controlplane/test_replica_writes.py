"""A plane on a store others write to (replicas on etcd; here two planes on one
``MemoryStore``) takes its model from the store's watch: a change another replica stored
while this plane's apply was in flight is never lost from its model, whichever of the two
writes the watch brings in first."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gossamer.controlplane import model_follow
from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import ValidationError
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.polling import wait_until
from gossamer.store.memory import MemoryStore
from gossamer.testing.mesh import route, service, workload
from gossamer.types import ResourceKey
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor

pytestmark = pytest.mark.asyncio


class Meddling:
    """``store``, with a hook run just before each write goes to it."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.exclusive = store.exclusive
        self.before_write: Any = None

    async def apply(self, puts: Sequence[Any] = (), deletes: Sequence[Any] = (), **kw: Any) -> int:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            await hook()
        return await self._store.apply(puts, deletes, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@asynccontextmanager
async def planes(store: Any, *others: Any) -> AsyncIterator[list[ControlPlane]]:
    """Running planes, one per store given (the same store wrapped or not)."""
    out = [
        ControlPlane(s, SnapshotCache(), XdsMonitor(CollectorRegistry())) for s in (store, *others)
    ]
    for p in out:
        await p.load()
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(p.run()) for p in out]
        try:
            yield out
        finally:
            for t in tasks:
                t.cancel()


def names(model: ModelSnapshot | None) -> set[str]:
    assert model is not None
    return {k.name for k in model.resources}


async def stored(store: MemoryStore) -> set[str]:
    items, _ = await store.list()
    return {s.key.name for s in items}


@pytest.mark.parametrize("absorbed_first", [False, True], ids=["after", "before"])
async def test_a_change_stored_by_another_replica_during_an_apply_is_kept(
    absorbed_first: bool,
) -> None:
    """Replica B stores ``db`` while A's apply of ``web`` is between its check and its
    write. Whether A's watch brought ``db`` in before A's write or only after it, A's
    model ends with both, as the store does (before: A took the snapshot it had checked,
    without ``db``, and then skipped ``db`` as older than its model)."""
    inner = MemoryStore()
    meddling = Meddling(inner)
    async with planes(meddling, inner) as (a, b):

        async def b_writes() -> None:
            done = await b.apply([parse_manifest(service("db", 5432))])
            if absorbed_first:
                await wait_until(
                    lambda: a.model is not None and a.model.revision >= done.revision,
                    timeout=5,
                    what="A's watch to bring B's write in",
                )

        meddling.before_write = b_writes
        result = await a.apply([parse_manifest(service("web", 8080))])
        assert a.model is not None and a.model.revision >= result.revision
        assert names(a.model) == {"db", "web"} == await stored(inner)
        await wait_until(lambda: names(b.model) == {"db", "web"}, timeout=5, what="B's model")


async def test_many_writes_of_two_replicas_end_in_the_same_model() -> None:
    """Applies on both replicas at once, interleaved by the loop: each ends with every
    resource stored, and nothing else."""
    store = MemoryStore()
    async with planes(store, store) as (a, b):
        await asyncio.gather(
            *(
                p.apply([parse_manifest(service(f"{tag}-{i}", 8000 + i))])
                for i in range(20)
                for p, tag in ((a, "a"), (b, "b"))
            )
        )
        want = await stored(store)
        assert len(want) == 40
        for p in (a, b):
            await wait_until(lambda p=p: names(p.model) == want, timeout=5, what="every write")


async def test_an_apply_alone_takes_the_model_it_checked(
    whole_checks: list[ModelSnapshot],
) -> None:
    """With no write between, the watch hands the apply its own validated snapshot: it is
    known consistent, so the next Route apply checks only what it changes."""
    whole = whole_checks
    async with planes(MemoryStore()) as (a,):
        await a.apply([parse_manifest(service("web", 8080))])
        await wait_until(lambda: len(whole) >= 2, timeout=5, what="the load and apply checks")
        checks = len(whole)
        rules = [{"destinations": [{"service": "web"}]}]
        await a.apply([parse_manifest(route("web", service="web", rules=rules))])
        assert len(whole) == checks
        assert a.model is not None and ResourceKey("Route", "default", "web") in a.model.resources


async def test_a_watch_slow_to_bring_the_write_in_delays_the_model_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The write is durable: if the watch does not bring it in within ``CATCH_UP_S`` the
    apply returns (and says so in the log), and the model takes it when the watch does."""
    monkeypatch.setattr(model_follow, "CATCH_UP_S", 0.2)
    inner = MemoryStore()
    held = asyncio.Event()

    class SlowWatch(Meddling):
        def watch(self, from_revision: int) -> Any:
            async def gen() -> AsyncIterator[Any]:
                async for batch in inner.watch(from_revision):
                    await held.wait()
                    yield batch

            return gen()

    async with planes(SlowWatch(inner)) as (a,):
        with caplog.at_level(logging.WARNING):
            result = await a.apply([parse_manifest(service("web", 8080))])
        assert "has not brought in this plane's write" in caplog.text
        assert await stored(inner) == {"web"}
        assert a.model is not None and a.model.revision < result.revision
        held.set()
        await wait_until(lambda: names(a.model) == {"web"}, timeout=5, what="the late write")


async def test_two_replicas_never_both_accept_what_only_one_may_have() -> None:
    """Each replica checks an apply on its own model: two Workloads on one address and
    port, applied to both replicas at once, passed both checks and were both stored. A
    write is now stored only if nothing was stored since the model it was checked on;
    else the replica reads what came between and checks again, and refuses the second."""
    store = MemoryStore()
    async with planes(store, store) as (a, b):
        await a.apply([parse_manifest(service("web", 8080))])
        await wait_until(lambda: names(b.model) == {"web"}, timeout=5, what="B has web")
        results = await asyncio.gather(
            *(
                p.apply([parse_manifest(workload(name, "web", "127.0.0.9", 15000, 8080))])
                for p, name in ((a, "w-a"), (b, "w-b"))
            ),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, ValidationError)]
        assert len(refused) == 1, results
        assert "127.0.0.9:15000 is already used by" in str(refused[0])
        assert len(await stored(store) & {"w-a", "w-b"}) == 1
