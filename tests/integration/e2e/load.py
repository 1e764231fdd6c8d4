"""A bounded concurrent load through the ingress that records every request's outcome."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True, slots=True)
class Outcome:
    started: float
    ended: float
    #: HTTP status, or 0 for a transport error
    status: int
    #: which app instance of the upstream service answered ("" if none)
    upstream: str
    detail: str


@dataclass
class ConcurrentLoad:
    """``concurrency`` workers GET ``url`` in a loop until stopped, ``max_requests`` in all
    or ``max_seconds``; every outcome is kept in order of completion. ``pace``: seconds
    each worker waits before each request (0: back to back)."""

    url: str
    concurrency: int = 4
    max_requests: int = 200_000
    max_seconds: float = 400.0
    pace: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        limits = httpx.Limits(max_connections=self.concurrency)
        async with (
            httpx.AsyncClient(timeout=15, trust_env=False, limits=limits) as client,
            asyncio.TaskGroup() as tg,
        ):
            for _ in range(self.concurrency):
                tg.create_task(self._worker(client, deadline))

    async def _worker(self, client: httpx.AsyncClient, deadline: float) -> None:
        while (
            not self._stop.is_set()
            and time.monotonic() < deadline
            and len(self.outcomes) < self.max_requests
        ):
            if self.pace:  # (before each request: failures are paced too)
                await asyncio.sleep(self.pace)
            started = time.monotonic()
            try:
                r = await client.get(self.url)
            except httpx.HTTPError as exc:
                self.outcomes.append(Outcome(started, time.monotonic(), 0, "", repr(exc)))
                continue
            upstream = ""
            if r.status_code == 200:
                upstream = str(r.json().get("upstream", {}).get("app", ""))
            self.outcomes.append(
                Outcome(started, time.monotonic(), r.status_code, upstream, r.text[:200])
            )

    def stop(self) -> None:
        self._stop.set()

    def mark(self) -> int:
        """A position in ``outcomes``: ``since(mark)`` is what completed after it."""
        return len(self.outcomes)

    def since(self, mark: int) -> list[Outcome]:
        return self.outcomes[mark:]

    def failed(self, mark: int = 0) -> list[Outcome]:
        return [o for o in self.since(mark) if o.status != 200]

    def served_by(self, mark: int = 0) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.since(mark):
            if o.status == 200:
                counts[o.upstream] = counts.get(o.upstream, 0) + 1
        return counts

    def ok_since(self, mark: int) -> int:
        return sum(1 for o in self.since(mark) if o.status == 200)
