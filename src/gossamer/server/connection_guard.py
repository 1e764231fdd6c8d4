"""One API connection's guard: deadlines for its requests, and its place under a cap.

uvicorn restarts its keep-alive timer on every byte and accepts connections without bound,
so a client dribbling a request's headers holds its connection (and an fd) forever. The
guard is per connection, the part of the REST API's server that sees every byte
(``GuardedHttpProtocol``, uvicorn's httptools protocol with timers) and the bookkeeping of
open connections (``ConnectionSlots``); accepting connections, TLS and the fd limit are the
server's (``gossamer.server.http_server``, whose docstring states the rules).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gossamer.errors import ConfigError

log = logging.getLogger(__name__)

#: the API may use at most this share of the process's file descriptors; the rest are for
#: xDS streams, the store and logs
API_FD_SHARE = 0.5


@dataclass(frozen=True)
class ApiServerLimits:
    """How long the API waits for a client, and how many connections it keeps open."""

    #: seconds for a request's headers to arrive (``--api-header-timeout``)
    header_timeout: float = 10.0
    #: seconds for a request's body to arrive once its headers have (``--api-body-timeout``)
    body_timeout: float = 60.0
    #: open API connections at most (``--api-max-connections``); never above half the fds
    max_connections: int = 1024

    def __post_init__(self) -> None:
        for flag, value in (
            ("--api-header-timeout", self.header_timeout),
            ("--api-body-timeout", self.body_timeout),
        ):
            if not 0 < value <= 3600:
                raise ConfigError(f"{flag}: must be 0 < seconds <= 3600, got {value}")
        if not 1 <= self.max_connections <= 1_000_000:
            raise ConfigError(
                f"--api-max-connections: must be 1..1000000, got {self.max_connections}"
            )

    def connection_cap(self, fd_limit: int) -> int:
        """``max_connections``, lowered to the API's share of ``fd_limit`` descriptors."""
        return max(1, min(self.max_connections, int(fd_limit * API_FD_SHARE)))


class ConnectionSlots:
    """Open API connections, and the order in which they started waiting for a request."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: set[GuardedHttpProtocol] = set()
        #: connections waiting for a request's headers, oldest first (dicts keep order)
        self._waiting: dict[GuardedHttpProtocol, None] = {}
        self._freed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._open)

    def add(self, conn: GuardedHttpProtocol) -> None:
        self._open.add(conn)

    def remove(self, conn: GuardedHttpProtocol) -> None:
        self._open.discard(conn)
        self._waiting.pop(conn, None)
        self._freed.set()

    def waiting(self, conn: GuardedHttpProtocol) -> None:
        self._waiting.pop(conn, None)
        self._waiting[conn] = None

    def busy(self, conn: GuardedHttpProtocol) -> None:
        self._waiting.pop(conn, None)

    def can_admit(self) -> bool:
        return len(self._open) < self.cap or bool(self._waiting)

    async def wait_for_room(self) -> None:
        while not self.can_admit():
            self._freed.clear()
            await self._freed.wait()

    def make_room(self) -> None:
        """Close the connection that has waited longest for a request if at the cap."""
        while len(self._open) >= self.cap and self._waiting:
            oldest = next(iter(self._waiting))
            self.remove(oldest)
            log.warning(
                "API: at its cap of %d connections: closed the one that waited longest for a "
                "request to let a new client in (--api-max-connections)", self.cap,
            )  # fmt: skip
            oldest.drop(503, "the API is at its connection limit; retry")


def plain_response(status: int, reason: str, text: str) -> bytes:
    body = (text + "\n").encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class GuardedHttpProtocol(HttpToolsProtocol):  # type: ignore[misc]
    """uvicorn's httptools protocol with receipt deadlines and a place in ``ConnectionSlots``.

    Relies on uvicorn's ``cycle`` (set when a request's headers are parsed; ``more_body``
    false once its body is in) and ``on_response_complete``, common to both its protocols.
    """

    def __init__(self, *, slots: ConnectionSlots, limits: ApiServerLimits, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._slots = slots
        self._limits = limits
        self._timer: asyncio.TimerHandle | None = None
        self._waiting_for = ""  # "headers", "body" or "" (a request is being handled)
        self._request: Any = None  # the cycle whose headers arrived last
        self._partial = False  # bytes of the next request arrived, not all its headers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._slots.add(self)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._slots.remove(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle: Any = self.cycle
        if self.transport.is_closing():
            return
        if cycle is not None and cycle is not self._request:  # a new request's headers
            self._request = cycle
            self._partial = False
            self._slots.busy(self)
            if cycle.more_body:
                self._arm("body", self._limits.body_timeout)
            else:
                self._disarm()
        elif self._waiting_for == "body" and cycle is not None and not cycle.more_body:
            self._disarm()
        elif self._waiting_for == "headers":
            self._partial = True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self._await_headers()

    def drop(self, status: int, why: str) -> None:
        """Close now; a client that sent part of a request (and got no answer) is told why."""
        self._cancel_timer()
        cycle = self.cycle
        started = self._waiting_for == "headers" and self._partial
        in_body = self._waiting_for == "body" and cycle is not None and not cycle.response_started
        if started or in_body:
            reason = "Request Timeout" if status == 408 else "Service Unavailable"
            self.transport.write(plain_response(status, reason, why))
        self.transport.close()

    def _await_headers(self) -> None:
        self._partial = False
        self._slots.waiting(self)
        self._arm("headers", self._limits.header_timeout)

    def _arm(self, what: str, seconds: float) -> None:
        self._cancel_timer()
        self._waiting_for = what
        self._timer = self.loop.call_later(seconds, self._late)

    def _disarm(self) -> None:
        self._cancel_timer()
        self._waiting_for = ""

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _late(self) -> None:
        self._timer = None
        what = self._waiting_for
        timeout = self._limits.header_timeout if what == "headers" else self._limits.body_timeout
        if what == "body" or self._partial:
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.warning(
                "API: closed the connection from %s: the request's %s did not arrive within "
                "%g s (--api-%s-timeout)", client, what, timeout, "header" if what == "headers"
                else "body",
            )  # fmt: skip
        self.drop(408, f"the request's {what} did not arrive within {timeout:g} s")
