"""Every revision ``apply`` returned survives SIGKILL of the writing process."""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import pytest

from gossamer.store.base import Change
from gossamer.store.sqlite import SQLiteStore

WRITER = Path(__file__).with_name("sqlite_writer.py")
DEADLINE = 60.0
ROUNDS = 6
KEEP = 3  # as in sqlite_writer.py


async def _run_and_kill(path: Path, lines: int | None) -> list[int]:
    """Start the writer, read ``lines`` revisions (None: kill before it is ready), SIGKILL it.

    Returns the revisions it printed.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER),
        str(path),
        "100000",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    printed: list[int] = []
    try:
        async with asyncio.timeout(DEADLINE):
            if lines is not None:
                ready = await proc.stdout.readline()
                assert ready == b"ready\n", (ready, await proc.stderr.read())
                while len(printed) < lines:
                    line = await proc.stdout.readline()
                    assert line, await proc.stderr.read()
                    printed.append(int(line))
            proc.kill()
            await proc.wait()
            # Revisions printed between our last read and the kill count too.
            printed.extend(
                int(line) for line in (await proc.stdout.read()).split() if line != b"ready"
            )
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -9
    return printed


def _check_batch(batch: list[Change], revision: int) -> None:
    i = revision - 1
    expected = [("put", "Item", f"item-{i}"), ("put", "Counter", "c")]
    if i >= KEEP:
        expected.append(("delete", "Item", f"item-{i - KEEP}"))
    assert [(c.type, c.key.kind, c.key.name) for c in batch] == expected
    assert {c.revision for c in batch} == {revision}
    assert batch[0].resource.manifest["spec"]["n"] == i
    assert batch[1].resource.manifest["spec"]["value"] == i


async def _check_store(path: Path) -> int:
    """Check the store holds exactly transactions 0..R-1 of the writer; return R."""
    async with await SQLiteStore.open(path) as store:
        revision = await store.revision()
        items, listed_at = await store.list(kind="Item")
        assert listed_at == revision
        alive = range(max(0, revision - KEEP), revision)
        assert [r.key.name for r in items] == sorted(f"item-{j}" for j in alive)
        for item in items:
            j = item.manifest["spec"]["n"]
            assert item.key.name == f"item-{j}"
            assert item.revision == item.create_revision == j + 1
        counters, _ = await store.list(kind="Counter")
        if revision:
            [counter] = counters
            assert counter.manifest["spec"]["value"] == revision - 1
            assert (counter.revision, counter.create_revision) == (revision, 1)
        else:
            assert counters == []
        stats = store.statistics()
        assert stats.resources == len(items) + len(counters)
        # The change log replays every transaction, in order.
        watch = store.watch(0)
        async with asyncio.timeout(DEADLINE):
            for expected in range(1, revision + 1):
                _check_batch(await anext(watch), expected)
        assert stats.log_entries == sum(3 if r > KEEP else 2 for r in range(1, revision + 1))
        return revision


@pytest.mark.integration
@pytest.mark.asyncio
async def test_every_returned_revision_survives_sigkill(tmp_path: Path) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    path = tmp_path / "store.db"
    previous = 0
    for round_ in range(ROUNDS):
        # Sometimes kill while the store is being created or opened.
        lines = None if rng.random() < 0.2 else rng.randint(0, 40)
        printed = await _run_and_kill(path, lines)
        context = f"seed={seed} round={round_} lines={lines} printed={printed[-3:]}"
        if not path.exists():
            assert not printed, context
            continue
        revision = await _check_store(path)
        assert revision >= max(printed, default=previous), context
        # Nothing committed was lost, nothing unreturned was invented beyond one transaction.
        assert revision >= previous, context
        assert revision <= max(printed, default=previous) + 1, context
        previous = revision
    assert previous > 0, f"seed={seed}: no round wrote anything"
