"""The REST API's HTTP server: uvicorn's HTTP/1.1 protocol behind our own accept loop.

uvicorn alone lets one client hold a connection forever: its keep-alive timer restarts on
every byte, so a client that dribbles a request's headers is never closed, and it accepts
connections until the process runs out of file descriptors (then asyncio's accept loop logs
a traceback per attempt while xDS, which shares the fds, starves). Here (the deadlines and
the cap are kept per connection by ``gossamer.server.connection_guard``):

- **deadlines**: a request's headers must arrive within ``header_timeout`` of the connection
  opening or of the previous response; its body within ``body_timeout`` of its headers. A
  late client gets ``408`` (if it sent part of a request) and is closed.
- **a connection cap** below the fd limit: at the cap, the connection that has waited
  longest for a request is closed to make room (legitimate clients send their headers at
  once, slow ones are the old ones); if every connection is busy with a request, accepting
  pauses and new clients wait in the kernel's backlog.
- **accept errors** (``EMFILE`` ...) pause accepting for a moment, never a tight loop, and
  repeated log messages are coalesced (``RepeatFilter``).
- **stopping**: accepting stops at once; requests in progress get ``STOP_GRACE_S`` to end
  (the owner answers its long polls first: ``api.changes``), then are cancelled, so a
  stop never waits out an apply's ``waitTimeout``.

- **TLS** (``ssl``, the default for ``gossamer control-plane``): each accepted connection's
  handshake runs in its own task, within ``header_timeout``, so a slow client never holds
  the accept loop. A client that speaks plain HTTP to the TLS port is answered ``400`` in
  plain text saying to use ``https://`` (its first byte is read with ``MSG_PEEK``). The
  context is the caller's: loading a renewed certificate into it serves new handshakes.

hypercorn's ``keep_alive_timeout`` is a header deadline, but neither it nor uvicorn caps
connections or pauses on ``EMFILE``; this wrapper keeps uvicorn (and httptools' parser).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import ssl
import threading
import time
from typing import Any

import uvicorn

from gossamer.server.connection_guard import (
    ApiServerLimits,
    ConnectionSlots,
    GuardedHttpProtocol,
    plain_response,
)
from gossamer.server.connection_guard import log as guard_log

log = logging.getLogger(__name__)
#: seconds a closing TLS connection waits for the client's close_notify (asyncio's default
#: is 30: a client that keeps an idle connection and does not read held every shutdown
#: of the control plane that long)
TLS_SHUTDOWN_S = 2.0
#: seconds requests in progress have to end once the server stops, then they are cancelled
STOP_GRACE_S = 5.0

#: accept() failures that mean "out of fds or memory for now": pause, then retry
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_PAUSE_S = 0.5
#: foreign loggers whose repeated messages are coalesced while the server runs
COALESCED_LOGGERS = ("uvicorn.error", "asyncio", __name__, guard_log.name)


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


class ApiServer:
    """Serve an ASGI app on a listening socket until ``stop()``; see the module docstring."""

    def __init__(
        self,
        app: Any,
        sock: socket.socket,
        limits: ApiServerLimits,
        *,
        fd_limit: int,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.limits = limits
        self.slots = ConnectionSlots(limits.connection_cap(fd_limit))
        self._sock = sock
        self._tls = tls
        #: TLS handshakes in flight (they hold an fd before they hold a slot)
        self._handshakes = asyncio.Semaphore(self.slots.cap)
        self._pending: set[asyncio.Task[None]] = set()
        self._config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=STOP_GRACE_S,
        )
        self._server = uvicorn.Server(self._config)
        self._accepting: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        """Accept and serve connections; returns once stopped and every connection closed."""
        repeats = RepeatFilter()
        for name in COALESCED_LOGGERS:
            logging.getLogger(name).addFilter(repeats)
        try:
            async with asyncio.TaskGroup() as tg:
                self._accepting = tg.create_task(self._accept_loop(tg))
                # no sockets: uvicorn runs its clock, connection bookkeeping and shutdown
                await self._server.serve(sockets=[])
                self._accepting.cancel()
                for task in list(self._pending):  # handshakes not done: never served
                    task.cancel()
        finally:
            for name in COALESCED_LOGGERS:
                logging.getLogger(name).removeFilter(repeats)

    @property
    def requests_in_progress(self) -> int:
        """Requests being served now (a long poll's wait included)."""
        return len(self._server.server_state.tasks)

    def use_tls(self, context: ssl.SSLContext) -> None:
        """Present ``context`` to every connection accepted from now on (a renewed
        certificate); connections already open keep theirs. Safe from any thread: the
        context is replaced whole, never changed while handshakes use it."""
        self._tls = context

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

    async def _accept_loop(self, tg: asyncio.TaskGroup) -> None:
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
                    if self._tls is None:
                        await loop.connect_accepted_socket(self._protocol, conn)
                    else:
                        await self._handshakes.acquire()
                        task = tg.create_task(self._serve_tls(conn, self._tls))
                        self._pending.add(task)
                        task.add_done_callback(self._pending.discard)
                except OSError:
                    conn.close()
                except BaseException:
                    conn.close()
                    raise
        finally:
            self._sock.close()

    async def _serve_tls(self, conn: socket.socket, context: ssl.SSLContext) -> None:
        """Hand ``conn`` to uvicorn once its TLS handshake is done; a plain HTTP request is
        told to use https, a failed or late handshake closes it (never the server)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.limits.header_timeout):
                if await _plain_http(loop, conn):
                    answer = plain_response(
                        400,
                        "Bad Request",
                        "this is the Gossamer control plane's REST API: it serves HTTPS only; "
                        "use https:// (e.g. --server https://HOST:PORT)",
                    )
                    await loop.sock_sendall(conn, answer)
                    conn.close()
                    return
                await loop.connect_accepted_socket(
                    self._protocol,
                    conn,
                    ssl=context,
                    ssl_handshake_timeout=self.limits.header_timeout,
                    ssl_shutdown_timeout=TLS_SHUTDOWN_S,
                )
        except (OSError, TimeoutError) as e:  # ssl.SSLError is an OSError
            log.debug("API: TLS handshake failed: %s", e)
            conn.close()
        except BaseException:
            conn.close()
            raise
        finally:
            self._handshakes.release()


async def _plain_http(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bool:
    """Whether the first byte the client sent is a letter (an HTTP method), not a TLS
    record (0x16); it is left unread (``MSG_PEEK``)."""
    readable: asyncio.Future[None] = loop.create_future()
    fd = conn.fileno()

    def ready() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await readable
    finally:
        loop.remove_reader(fd)
    first = conn.recv(1, socket.MSG_PEEK)
    return bool(first) and first.isalpha()
