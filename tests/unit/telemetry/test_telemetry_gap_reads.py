"""A gap a flush writes while the API reads the gaps is counted, and once: the gaps not
yet on disk are read before the disk is (read after, a gap written between the two reads
was in neither, and ``/v1/ingestion`` said there was no gap: a CI run). And
``/v1/ingestion`` never shows a sample compared without its gap: the comparisons are read
before the gaps (read after, a flush comparing meanwhile showed a node at its final count
and no gap: another CI run)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from gossamer.telemetry.api import api_app
from gossamer.telemetry.serve import TelemetryService
from gossamer.telemetry.stat_sink import Gap, NodeState
from gossamer.telemetry.store import TelemetryStore

pytestmark = pytest.mark.asyncio

NOW = 30_000_000 * 60 + 30.0
NODE = "sidecar~default~web-1"


@pytest_asyncio.fixture
async def service(tmp_path: Path) -> AsyncIterator[TelemetryService]:
    store = TelemetryStore(tmp_path / "t.sqlite", 3600, 1 << 30)
    await store.open()
    try:
        yield TelemetryService(store, clock=lambda: NOW)
    finally:
        await store.close()


async def test_a_gap_written_while_the_gaps_are_read_counts_once(
    service: TelemetryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = service.store
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


async def test_ingestion_never_shows_a_compared_sample_without_its_gap(
    service: TelemetryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = service.store
    state = NodeState(NODE, "web", NOW - 60, NOW - 20, written=10, received=10)
    service.reconciler.states[NODE] = state
    real = store.gaps

    async def compared_meanwhile(since_minute: int) -> list[Gap]:
        # a flush compares the next sample (17 written, 7 never arrived) meanwhile
        state.written, state.t_s = 17, NOW - 2
        service.reconciler.new_gaps.append(Gap(NODE, "web", NOW - 20, NOW - 2, 7))
        monkeypatch.setattr(store, "gaps", real)
        return await real(since_minute)

    monkeypatch.setattr(store, "gaps", compared_meanwhile)
    transport = httpx.ASGITransport(app=api_app(service, None))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answers = [(await client.get("/v1/ingestion")).json() for _ in range(2)]
    shown = [(a["reconciliation"]["nodes"][NODE]["written"], a["gap"]) for a in answers]
    assert shown == [(10, False), (17, True)]
