"""The REST API's HTTP server: uvicorn's HTTP/1.1 protocol behind our own accept loop.

uvicorn alone lets one client hold a connection forever: its keep-alive timer restarts on
every byte, so a client that dribbles a request's headers is never closed, and it accepts
connections until the process runs out of file descriptors (then asyncio's accept loop logs
a traceback per attempt while xDS, which shares the fds, starves). Here:

- **deadlines**: a request's headers must arrive within ``header_timeout`` of the connection
  opening or of the previous response; its body within ``body_timeout`` of its headers. A
  late client gets ``408`` (if it sent part of a request) and is closed.
- **a connection cap** below the fd limit: at the cap, the connection that has waited
  longest for a request is closed to make room (legitimate clients send their headers at
  once, slow ones are the old ones); if every connection is busy with a request, accepting
  pauses and new clients wait in the kernel's backlog.
- **accept errors** (``EMFILE`` ...) pause accepting for a moment, never a tight loop, and
  repeated log messages are coalesced (``RepeatFilter``).

hypercorn's ``keep_alive_timeout`` is a header deadline, but neither it nor uvicorn caps
connections or pauses on ``EMFILE``; this wrapper keeps uvicorn (and httptools' parser).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gossamer.errors import ConfigError

log = logging.getLogger(__name__)

#: accept() failures that mean "out of fds or memory for now": pause, then retry
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_PAUSE_S = 0.5
#: the API may use at most this share of the process's file descriptors; the rest are for
#: xDS streams, the store and logs
API_FD_SHARE = 0.5
#: foreign loggers whose repeated messages are coalesced while the server runs
COALESCED_LOGGERS = ("uvicorn.error", "asyncio", __name__)


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


def fd_limit() -> int:
    """This process's soft limit on open file descriptors (``RLIMIT_NOFILE``)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_fd_limit() -> int:
    """Raise the soft fd limit to the hard one (once, at process start); the new soft limit.

    Distributions default the soft limit to 1024 while allowing far more; a control plane
    serving many proxies and API clients needs them.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as e:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, e)
    return fd_limit()


class RepeatFilter(logging.Filter):
    """Let a message (by logger, level and first line) through at most once per interval;
    the next one that passes says how many were dropped in between."""

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg).split("\n", 1)[0][:200])
        now = time.monotonic()
        with self._lock:
            last, dropped = self._seen.get(key, (float("-inf"), 0))
            if now - last < self.interval:
                self._seen[key] = (last, dropped + 1)
                return False
            self._seen[key] = (now, 0)
            if len(self._seen) > 1000:
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.interval}
        if dropped:
            record.msg = f"{record.msg} [{dropped} more like this in the last {self.interval:g} s]"
        return True


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


def _plain_response(status: int, reason: str, text: str) -> bytes:
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
            self.transport.write(_plain_response(status, reason, why))
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


class ApiServer:
    """Serve an ASGI app on a listening socket until ``stop()``; see the module docstring."""

    def __init__(
        self, app: Any, sock: socket.socket, limits: ApiServerLimits, *, fd_limit: int
    ) -> None:
        self.limits = limits
        self.slots = ConnectionSlots(limits.connection_cap(fd_limit))
        self._sock = sock
        self._config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none")
        self._server = uvicorn.Server(self._config)
        self._accepting: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        """Accept and serve connections; returns once stopped and every connection closed."""
        repeats = RepeatFilter()
        for name in COALESCED_LOGGERS:
            logging.getLogger(name).addFilter(repeats)
        try:
            async with asyncio.TaskGroup() as tg:
                self._accepting = tg.create_task(self._accept_loop())
                # no sockets: uvicorn runs its clock, connection bookkeeping and shutdown
                await self._server.serve(sockets=[])
                self._accepting.cancel()
        finally:
            for name in COALESCED_LOGGERS:
                logging.getLogger(name).removeFilter(repeats)

    def stop(self) -> None:
        """Stop accepting at once; finish the requests in progress, close idle connections."""
        if self._accepting is not None:
            self._accepting.cancel()
        self._server.should_exit = True

    def _protocol(self) -> GuardedHttpProtocol:
        return GuardedHttpProtocol(
            slots=self.slots,
            limits=self.limits,
            config=self._config,
            server_state=self._server.server_state,
            app_state={},
        )

    async def _room(self) -> None:
        """Return once a connection can be let in (at the cap with every connection busy
        with a request, wait: new clients queue in the kernel's backlog meanwhile)."""
        if not self.slots.can_admit():
            log.warning(
                "API: all %d connections are busy with requests; new clients wait "
                "(--api-max-connections)", self.slots.cap,
            )  # fmt: skip
            await self.slots.wait_for_room()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._room()
                try:
                    conn, _ = await loop.sock_accept(self._sock)
                except OSError as e:
                    if e.errno not in RESOURCE_ERRNOS:
                        if e.errno in (errno.ECONNABORTED, errno.EPROTO):
                            continue
                        raise
                    log.warning(
                        "API: cannot accept a connection: %s; pausing accepts for %g s (raise "
                        "the fd limit, `ulimit -n`, or lower --api-max-connections)",
                        e.strerror, ACCEPT_PAUSE_S,
                    )  # fmt: skip
                    await asyncio.sleep(ACCEPT_PAUSE_S)
                    continue
                try:
                    await self._room()  # connections may have become busy meanwhile
                    # at the cap, close the connection that waited longest for a request
                    self.slots.make_room()
                    await loop.connect_accepted_socket(self._protocol, conn)
                except OSError:
                    conn.close()
                except BaseException:
                    conn.close()
                    raise
        finally:
            self._sock.close()
