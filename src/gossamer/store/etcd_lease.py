"""One etcd lease a replica keeps alive: what its presence claims and its leadership are
bound to, so they vanish ``ttl`` seconds after the replica dies (at once when it stops).

A keep-alive costs no revision. ``keep()`` is one round: a keep-alive on the open stream,
or a new lease when there was none or etcd says the old one expired; it returns whether the
lease is new (everything bound to the old one is gone from etcd and must be written again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from typing import Any

import aetcd.rpc as rpc  # type: ignore[import-untyped]
import grpc.aio

from gossamer.errors import StoreError
from gossamer.store.etcd_client import EtcdConnection

log = logging.getLogger(__name__)


def replica_name() -> str:
    """A name for this control-plane replica in etcd: its host name and a random suffix
    (two replicas on one host differ)."""
    return f"{socket.gethostname()}-{secrets.token_hex(3)}"


class EtcdLease:
    def __init__(self, connection: EtcdConnection, ttl: int, *, what: str) -> None:
        self.connection = connection
        self.ttl = ttl
        #: what the lease holds, for the log ("shared host presence")
        self.what = what
        #: the lease's id; None before the first round and after ``revoke``
        self.id: int | None = None
        self._stream: Any = None

    async def keep(self) -> bool:
        """Keep the lease alive, or get a new one; True if it is new. Raises what etcd or
        its stream raised (``drop_stream`` then, and try again next round)."""
        if self.id is not None and await self._kept_alive():
            return False
        granted = await self.connection.lease_stub().LeaseGrant(
            rpc.LeaseGrantRequest(TTL=self.ttl), timeout=self.connection.timeout
        )
        self.id = int(granted.ID)
        return True

    async def _kept_alive(self) -> bool:
        """One keep-alive of the lease; False if etcd says it expired."""
        if self._stream is None:
            self._stream = self.connection.lease_stub().LeaseKeepAlive()
        async with asyncio.timeout(self.connection.timeout):
            await self._stream.write(rpc.LeaseKeepAliveRequest(ID=self.id))
            answer = await self._stream.read()
        if answer is grpc.aio.EOF:
            self.drop_stream()
            raise StoreError("etcd ended the lease keep-alive stream")
        if int(answer.TTL) <= 0:
            log.warning(
                "%s: this replica's etcd lease expired (etcd unreachable for over %d s?); "
                "taking a new one",
                self.what,
                self.ttl,
            )
            return False
        return True

    def drop_stream(self) -> None:
        """Forget the keep-alive stream (after a failure: the next round opens another)."""
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None

    async def revoke(self, closed: bool) -> None:
        """Revoke the lease (what it holds goes at once), best effort: a replica that stops
        must not hold its keys for another ``ttl`` seconds. ``closed``: the store's
        connection is closed already (nothing to do but forget)."""
        self.drop_stream()
        if self.id is None or closed:
            return
        with contextlib.suppress(grpc.aio.AioRpcError, TimeoutError, StoreError):
            await self.connection.lease_stub().LeaseRevoke(
                rpc.LeaseRevokeRequest(ID=self.id), timeout=1.0
            )
        self.id = None


def what_failed(e: BaseException) -> str:
    """One line for the log saying what an etcd call or stream raised."""
    if isinstance(e, grpc.aio.AioRpcError):
        return f"etcd: {e.code().name}: {e.details()}"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
