"""Sending the host's denials to the control plane's audit trail (``POST
/v1/agents/{agent_id}/decisions``; docs/agent.md, "Denials").

Records wait in a bounded queue: ``add`` never waits (it is called while an Envoy's access
log stream is read), and when the queue is full the oldest record is dropped and counted.
One task sends batches, one request at a time, as soon as records arrive. A control plane
that is down or unreachable keeps the batch queued and is retried with back-off (what does
not fit is dropped, counted); one that refuses a batch (4xx other than 401: a record it
will never take) drops it, counted. The counts are in ``gossamer agent status``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from gossamer.errors import GossamerError, RejectedError
from gossamer.polling import Backoff

log = logging.getLogger(__name__)

#: records the queue holds while the control plane cannot take them
QUEUE_CAPACITY = 10_000
#: records in one report (the control plane takes up to 1000)
BATCH = 500
RETRY = Backoff(initial=0.5, maximum=15.0)


class DecisionsApi(Protocol):
    async def report_decisions(self, decisions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """POST the records; raises the client branch of ``gossamer.errors``."""
        ...


class DenialShipper:
    """``add`` records, ``run(api)`` in the agent's task group; ``counts()`` for status."""

    def __init__(
        self,
        changed: Callable[[dict[str, Any]], None] = lambda _: None,
        *,
        capacity: int = QUEUE_CAPACITY,
        batch: int = BATCH,
        retry: Backoff = RETRY,
    ) -> None:
        self._queue: deque[dict[str, Any]] = deque()
        self._capacity = capacity
        self._batch = batch
        self._retry = retry
        self._wake = asyncio.Event()
        self._changed = changed
        self.sent = 0
        self.dropped = 0
        self.refused = 0
        self.last_error: str | None = None

    def add(self, record: dict[str, Any]) -> None:
        self._queue.append(record)
        self._trim()
        self._wake.set()

    def _trim(self) -> None:
        while len(self._queue) > self._capacity:
            self._queue.popleft()
            self.dropped += 1

    def counts(self) -> dict[str, Any]:
        return {
            "queued": len(self._queue),
            "sent": self.sent,
            "dropped": self.dropped,
            "refused": self.refused,
            "error": self.last_error,
        }

    async def run(self, api: DecisionsApi) -> None:
        """Send what arrives until cancelled."""
        backoff = self._retry.retries()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                n = min(self._batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(n)]
                try:
                    await api.report_decisions(batch)
                except RejectedError as e:
                    self.refused += len(batch)
                    self._failed(f"the control plane refused {len(batch)} denial(s): {e}")
                    continue
                except GossamerError as e:
                    self._queue.extendleft(reversed(batch))
                    self._trim()
                    delay = backoff.next()
                    self._failed(f"{e} (retrying in {delay:.1f} s)")
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                self.sent += len(batch)
                self.last_error = None
                self._changed(self.counts())

    def _failed(self, message: str) -> None:
        if message != self.last_error:
            log.warning("denials: %s", message)
        self.last_error = message
        self._changed(self.counts())
