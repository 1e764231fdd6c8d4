"""The decision point's decisions on their way out: a bounded queue the check path only
appends to, and a batcher that empties it into a sink (the control plane's audit trail, or
a log) a batch at a time (docs/ngac.md, "`gossamer authz serve`").

A check must never wait for reporting: :meth:`DecisionQueue.append` is an O(1) append (or,
when the queue is full, a count of the record dropped), nothing more; it may be called from
any thread (the gRPC server's workers), the batcher runs on the event loop. The batcher sends
what has gathered within ``linger_s`` of the first record (or at once when a batch is
full), so a decision is reported well within a second; a sink that fails for a while
(the control plane restarting) is retried with back-off while the queue keeps the newest
``capacity`` records and counts the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gossamer.authz.mesh_names import path_of
from gossamer.errors import ReportRefusedError
from gossamer.polling import Backoff

log = logging.getLogger(__name__)

#: records waiting at most (beyond that each new one is dropped and counted)
QUEUE_CAPACITY = 20_000
#: records in one report at most
MAX_BATCH = 500
#: how long a batch gathers after its first record (s)
LINGER_S = 0.2
#: sends of one batch at most (with back-off up to 5 s: about a minute) before it is dropped
MAX_ATTEMPTS = 15


class DecisionRecord(NamedTuple):
    """One check as it was decided (the fields of the control plane's ``RequestDecision``
    a decision point reports; the control plane adds ``source`` and ``reporter``). A
    tuple: what a check makes is the tuple; the body is formatted when it is reported."""

    request_id: str
    at: float
    allowed: bool
    service: str
    caller: str
    end_user: str
    method: str
    #: as Envoy sent it (the query string is dropped when reported)
    path: str
    #: why not ("" when allowed: the report says what granted it)
    reason: str
    #: the attribute decided on
    target: str

    def to_body(self) -> dict[str, Any]:
        """The record as ``POST /v1/authz/decisions`` takes it (and the log prints it)."""
        reason = self.reason or f"{self.method} granted on {self.target or 'svc:' + self.service}"
        return {
            "requestId": self.request_id,
            "at": self.at,
            "decision": "allow" if self.allowed else "deny",
            "service": self.service,
            "caller": self.caller,
            "endUser": self.end_user,
            "method": self.method,
            "path": path_of(self.path),
            "reason": reason,
        }


class DecisionQueue:
    """Records waiting to be reported; bounded, never blocking the appender (any thread).

    The waiter (:meth:`wait`, on the event loop) is woken through the loop
    (``call_soon_threadsafe``) once per empty-to-queued, not once per record.
    """

    def __init__(self, capacity: int = QUEUE_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._items: deque[DecisionRecord] = deque()
        self._ready = asyncio.Event()
        self._lock = threading.Lock()
        #: the waiter's loop (None until someone waits), and whether it was woken since
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken = False
        #: appended so far, and dropped because the queue was full
        self.recorded = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def append(self, record: DecisionRecord) -> None:
        """Queue ``record`` (the check path's only cost), or count it dropped when full."""
        with self._lock:
            items = self._items
            if len(items) >= self.capacity:
                self.dropped += 1
                return
            items.append(record)
            self.recorded += 1
            if self._woken:
                return
            self._woken = True
            loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # closed: nobody waits any more
                loop.call_soon_threadsafe(self._ready.set)

    def take(self, limit: int) -> list[DecisionRecord]:
        """Up to ``limit`` of the oldest records, removed from the queue."""
        items = self._items
        return [items.popleft() for _ in range(min(limit, len(items)))]

    async def wait(self) -> None:
        """Until some record is queued."""
        self._loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._items:
                    return
                self._woken = False
                self._ready.clear()
            await self._ready.wait()


#: sends one batch; raises ``ReportRefusedError`` for a batch to drop, anything else to retry
Sink = Callable[[list[DecisionRecord]], Awaitable[None]]


@dataclass
class BatcherStats:
    sent: int = 0
    #: records the sink refused for good, or never took after ``MAX_ATTEMPTS``
    refused: int = 0
    #: failed sends (each retried)
    failures: int = 0
    batches: int = 0


@dataclass
class DecisionBatcher:
    """Empties ``queue`` into ``sink`` a batch at a time, until cancelled."""

    queue: DecisionQueue
    sink: Sink
    max_batch: int = MAX_BATCH
    linger_s: float = LINGER_S
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.5, maximum=5.0))
    stats: BatcherStats = field(default_factory=BatcherStats)
    _dropped_seen: int = 0

    async def run(self) -> None:
        retries = self.backoff.retries()
        while True:
            await self.queue.wait()
            if len(self.queue) < self.max_batch:
                await asyncio.sleep(self.linger_s)  # gather what follows the first record
            batch = self.queue.take(self.max_batch)
            for _ in range(MAX_ATTEMPTS):
                if await self._send(batch):
                    break
                await asyncio.sleep(retries.next())
            else:
                self.stats.refused += len(batch)
                log.error("%d decisions dropped after %d attempts", len(batch), MAX_ATTEMPTS)
            retries.reset()
            self._note_drops()

    async def flush(self) -> None:
        """Send what is queued now, once each batch (at shutdown; failures are dropped)."""
        while len(self.queue):
            await self._send(self.queue.take(self.max_batch))
        self._note_drops()

    async def _send(self, batch: list[DecisionRecord]) -> bool:
        """Whether ``batch`` is done with (sent, or refused for good)."""
        try:
            await self.sink(batch)
        except ReportRefusedError as e:
            self.stats.refused += len(batch)
            log.error("%d decisions not reported (dropped): %s", len(batch), e)
            return True
        except Exception as e:  # the sink's errors are all worth a retry (I/O)
            self.stats.failures += 1
            log.warning("reporting %d decisions failed (retrying): %s", len(batch), e)
            return False
        self.stats.sent += len(batch)
        self.stats.batches += 1
        return True

    def _note_drops(self) -> None:
        dropped = self.queue.dropped
        if dropped > self._dropped_seen:
            log.warning(
                "%d decisions dropped so far: more checks than reporting keeps up with "
                "(the queue holds %d)",
                dropped,
                self.queue.capacity,
            )
            self._dropped_seen = dropped
