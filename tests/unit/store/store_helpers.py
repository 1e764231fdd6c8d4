"""Shared helpers for the store tests: manifests, backend fixtures, bounded watch reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from gossamer.store.base import Change, Store
from gossamer.store.etcd import EtcdStore
from gossamer.store.memory import DEFAULT_HISTORY, MemoryStore
from gossamer.store.sqlite import SQLiteStore
from gossamer.testing.etcd import EtcdServer
from gossamer.types import Manifest

#: Generous: only reached when something is broken.
DEADLINE = 30.0

MakeStore = Callable[..., Awaitable[Store]]


def manifest(kind: str, name: str, namespace: str | None = None, **spec: Any) -> Manifest:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": "gossamer.dev/v1", "kind": kind, "metadata": metadata, "spec": spec}


class StoreMaker:
    """Opens stores of one backend and closes all of them at the end of a test."""

    def __init__(self, backend: str, directory: Path, etcd: EtcdServer | None = None) -> None:
        self.backend = backend
        self.directory = directory
        #: the etcd server of the "etcd" backend (one per test, so revisions start at 1)
        self.etcd = etcd
        self.opened: list[Store] = []

    async def __call__(self, history: int = DEFAULT_HISTORY) -> Store:
        store: Store
        if self.backend == "memory":
            store = MemoryStore(history=history)
        elif self.backend == "etcd":
            assert self.etcd is not None
            store = await EtcdStore.open(
                f"{self.etcd.url}/store-{len(self.opened)}", history=history
            )
        else:
            path = self.directory / f"store-{len(self.opened)}.db"
            store = await SQLiteStore.open(path, history=history)
        self.opened.append(store)
        return store

    async def close_all(self) -> None:
        for store in self.opened:
            await store.close()


async def take(watch: AsyncIterator[list[Change]], count: int) -> list[list[Change]]:
    """The next ``count`` batches of a watch, failing the test if they do not come."""
    batches: list[list[Change]] = []
    async with asyncio.timeout(DEADLINE):
        while len(batches) < count:
            batches.append(await anext(watch))
    return batches


async def drain(watch: AsyncIterator[list[Change]]) -> list[list[Change]]:
    """Every batch until the watch ends (it must end before the deadline)."""
    batches: list[list[Change]] = []
    async with asyncio.timeout(DEADLINE):
        async for batch in watch:
            batches.append(batch)
    return batches


def revisions(batches: list[list[Change]]) -> list[int]:
    """The transaction revision of each batch, checking a batch is one transaction."""
    out = []
    for batch in batches:
        assert batch, "a watch must never yield an empty batch"
        assert len({c.revision for c in batch}) == 1, batch
        out.append(batch[0].revision)
    return out


def watchers(store: Store) -> int:
    """How many watches of ``store`` are running, from its statistics."""
    return store.statistics().watchers
