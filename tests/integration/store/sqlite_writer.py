"""Writes transactions to an SQLite store as fast as it can; killed by the durability test.

Usage: python sqlite_writer.py STORE_PATH COUNT

Prints "ready" once the store is open, then each revision ``apply`` returned, flushing
after every line. Transaction i (revision i + 1) puts Item item-i, sets Counter c to i and
deletes item-(i-3).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from gossamer.store.sqlite import SQLiteStore
from gossamer.types import ResourceKey

KEEP = 3


def transaction(i: int) -> tuple[list[dict[str, object]], list[ResourceKey]]:
    def resource(kind: str, name: str, **spec: object) -> dict[str, object]:
        return {
            "apiVersion": "gossamer.dev/v1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }

    puts = [
        resource("Item", f"item-{i}", n=i, padding="x" * 200),
        resource("Counter", "c", value=i),
    ]
    deletes = [ResourceKey("Item", "default", f"item-{i - KEEP}")] if i >= KEEP else []
    return puts, deletes


async def main(path: Path, count: int) -> None:
    async with await SQLiteStore.open(path) as store:
        print("ready", flush=True)
        start = await store.revision()
        for i in range(start, start + count):
            puts, deletes = transaction(i)
            print(await store.apply(puts, deletes), flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
