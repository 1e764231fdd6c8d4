"""A gap a flush writes while the API reads the gaps is counted, and once: the gaps not
yet on disk are read before the disk is (read after, a gap written between the two reads
was in neither, and ``/v1/ingestion`` said there was no gap: a CI run)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gossamer.telemetry.serve import TelemetryService
from gossamer.telemetry.stat_sink import Gap
from gossamer.telemetry.store import TelemetryStore

pytestmark = pytest.mark.asyncio

NOW = 30_000_000 * 60 + 30.0
NODE = "sidecar~default~web-1"


async def test_a_gap_written_while_the_gaps_are_read_counts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TelemetryStore(tmp_path / "t.sqlite", 3600, 1 << 30)
    await store.open()
    try:
        service = TelemetryService(store, clock=lambda: NOW)
        real = store.gaps

        def reading(first: Callable[[], Awaitable[object]], then_flush: bool) -> None:
            async def gaps(since_minute: int) -> list[Gap]:
                if not then_flush:
                    await first()
                found = await real(since_minute)
                if then_flush:
                    await first()
                return found

            monkeypatch.setattr(store, "gaps", gaps)

        # the disk is read, then a flush writes the gap before the API looks further
        written = Gap(NODE, "web", NOW - 40, NOW - 10, 7)
        service.reconciler.new_gaps.append(written)
        reading(service.flush, then_flush=True)
        assert await service.gaps(0) == [written]
        # a flush writes the next gap before the disk is read: on disk, counted once
        later = Gap(NODE, "web", NOW - 9, NOW - 2, 3)
        service.reconciler.new_gaps.append(later)
        reading(service.flush, then_flush=False)
        assert await service.gaps(0) == [written, later]
        monkeypatch.setattr(store, "gaps", real)
        assert await service.gaps(0) == [written, later]  # both on disk now
    finally:
        await store.close()
