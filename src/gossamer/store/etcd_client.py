"""gRPC channels to the members of an etcd cluster, with fail-over and errors that say what
to do.

The etcd v3 protocol comes from ``aetcd``'s generated stubs (``aetcd.rpc``); its ``Client``
is not used: its watcher starts tasks no TaskGroup owns and has no resumption, and the store
needs both under its own control (``etcd_watch.py``). Calls are unary except ``Watch``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aetcd.rpc as rpc  # type: ignore[import-untyped]
import grpc
import grpc.aio

from gossamer.errors import ConflictError, StoreError
from gossamer.store.etcd_url import (
    RECOMMENDED_MAX_REQUEST_BYTES,
    RECOMMENDED_MAX_TXN_OPS,
    EtcdLocation,
)

#: the client's own message limits: above any etcd --max-request-bytes we ask for
_MESSAGE_BYTES = 2 * RECOMMENDED_MAX_REQUEST_BYTES
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", _MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]
#: codes after which another member (or the same one, later) may answer
RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN}
)
LIMITS_HELP = (
    f"start etcd with --max-txn-ops {RECOMMENDED_MAX_TXN_OPS} --max-request-bytes "
    f"{RECOMMENDED_MAX_REQUEST_BYTES} (docs/store.md, 'etcd'), or apply fewer resources at once"
)


class EtcdConnection:
    """One channel per member; calls go to the current member and move on to the next one
    when it cannot be reached, until ``timeout`` seconds have passed."""

    def __init__(self, location: EtcdLocation, *, timeout: float = 10.0) -> None:
        self.location = location
        self.timeout = timeout
        self._channels = [
            grpc.aio.insecure_channel(endpoint, options=_CHANNEL_OPTIONS)
            for endpoint in location.endpoints
        ]
        self._current = 0
        self._closed = False

    @property
    def endpoint(self) -> str:
        return self.location.endpoints[self._current]

    def kv(self) -> Any:
        return rpc.KVStub(self._channels[self._current])

    def watch_stub(self) -> Any:
        return rpc.WatchStub(self._channels[self._current])

    def lease_stub(self) -> Any:
        return rpc.LeaseStub(self._channels[self._current])

    def next_member(self) -> None:
        """Move on to the next member (after the current one failed)."""
        self._current = (self._current + 1) % len(self._channels)

    async def range(self, request: Any) -> Any:
        return await self.call("Range", request)

    async def txn(self, request: Any) -> Any:
        return await self.call("Txn", request)

    async def call(self, method: str, request: Any) -> Any:
        """``KV.<method>(request)``, retried on other members while none answers."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        delay = 0.05
        while True:
            self.check_open()
            remaining = deadline - loop.time()
            try:
                return await getattr(self.kv(), method)(request, timeout=max(remaining, 0.01))
            except grpc.aio.AioRpcError as e:
                if e.code() not in RETRYABLE:
                    raise translate(e, method) from None
                if loop.time() + delay >= deadline:
                    raise unreachable(self.location, e) from None
                self.next_member()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def answers(self, method: str, request: Any, within: float) -> bool:
        """Does any member answer ``KV.<method>(request)`` within ``within`` seconds (each
        member tried once, in turn; no retries)? For the liveness probe (``etcd_health``)."""
        for channel in self._channels:
            if self._closed:
                return False
            try:
                await getattr(rpc.KVStub(channel), method)(request, timeout=within)
            except grpc.aio.AioRpcError:
                continue
            return True
        return False

    def check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store at {self.location} is closed; open it again")

    async def close(self) -> None:
        self._closed = True
        for channel in self._channels:
            with contextlib.suppress(Exception):
                await channel.close()


def unreachable(location: EtcdLocation, e: grpc.aio.AioRpcError) -> StoreError:
    return StoreError(
        f"cannot reach etcd at {location} ({e.code().name}: {e.details()}); check that its "
        "members run and listen on those addresses (nothing was written)"
    )


def translate(e: grpc.aio.AioRpcError, method: str) -> Exception:
    """An etcd error as the store's own, saying what to do."""
    details = e.details() or ""
    if "too many operations in txn" in details:
        return StoreError(
            f"the apply is one etcd transaction with more operations than the etcd server's "
            f"--max-txn-ops allows (nothing was written); {LIMITS_HELP}"
        )
    if "request is too large" in details or e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return StoreError(
            f"the apply is one etcd transaction larger than the etcd server's "
            f"--max-request-bytes allows ({details}; nothing was written); {LIMITS_HELP}"
        )
    if "required revision has been compacted" in details:
        return ConflictError(
            "the revision asked for was compacted in etcd; list again and watch from the "
            "listing's revision"
        )
    return StoreError(f"etcd refused {method}: {e.code().name}: {details}")
