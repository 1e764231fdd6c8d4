"""A real HTTP backend in-process: HTTP/1.1 and cleartext HTTP/2 (prior knowledge or upgrade).

Served by Hypercorn on a socket we bind ourselves, so port 0 works and ``address`` is known
before the first request. Every answer says which backend gave it.

Paths: ``/status/NNN`` answers with status NNN (200..599, else 400); ``/delay/MS`` waits
MS milliseconds (at most 60 s) first; anything else answers 200. The body is JSON:
``{"backend", "method", "path", "query", "http_version", "headers", "body_bytes"}``.

With ``next_hop`` (a URL, e.g. the caller's sidecar outbound address) it behaves like an
app in a traced mesh: each request first makes ``GET next_hop + path`` copying the trace
headers (``PROPAGATED``: W3C ``traceparent``/``tracestate`` and ``x-request-id``, as
Istio asks apps to), answers that call's status, and adds ``"next"`` (its JSON) to the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
from collections import Counter, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config

from gossamer.cancel import raise_if_cancelling
from gossamer.errors import ProcessError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_STATUS = re.compile(r"/status/(\d{3})")
_DELAY = re.compile(r"/delay/(\d{1,6})")
_MAX_DELAY_MS = 60_000
_MAX_BODY = 16 * 1024 * 1024
#: headers a ``next_hop`` call copies from the inbound request (trace context)
PROPAGATED = ("traceparent", "tracestate", "x-request-id")


@dataclass(frozen=True, slots=True)
class SeenRequest:
    method: str
    path: str
    http_version: str
    headers: dict[str, str]


class HttpBackend:
    """``async with HttpBackend("cart-v1", host="127.0.0.2") as backend:``."""

    def __init__(
        self,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        keep_last: int = 1000,
        next_hop: str | None = None,
    ) -> None:
        self.name = name
        self.next_hop = next_hop
        self._client: httpx.AsyncClient | None = None
        self._bind = (host, port)
        self.address: tuple[str, int] = (host, port)
        #: requests answered (all paths)
        self.requests = 0
        self.requests_by_path: Counter[str] = Counter()
        #: the last ``keep_last`` requests, oldest first
        self.seen: deque[SeenRequest] = deque(maxlen=keep_last)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    async def __aenter__(self) -> Self:
        family = socket.AF_INET6 if ":" in self._bind[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self._bind)
            sock.listen(128)  # connections queue until Hypercorn accepts them
        except OSError as exc:
            sock.close()
            raise ProcessError(
                f"HttpBackend {self.name}: cannot listen on {self._bind[0]}:{self._bind[1]}: {exc}"
            ) from exc
        self.address = sock.getsockname()[:2]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]  # Hypercorn now owns the socket
        config.accesslog = None
        config.errorlog = logging.getLogger(f"{__name__}.{self.name}")
        config.graceful_timeout = 1.0
        config.keep_alive_timeout = 60.0
        self._stop.clear()
        self._task = asyncio.create_task(
            serve(self._app, config, shutdown_trigger=self._stop.wait),  # type: ignore[arg-type]
            name=f"HttpBackend {self.name}",
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop serving (open connections get a short grace period)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._task is None:
            return
        self._stop.set()
        task, self._task = self._task, None
        try:
            async with asyncio.timeout(10.0):
                await task
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body_bytes = 0
        while True:
            message = await receive()
            body_bytes += len(message.get("body", b""))
            if not message.get("more_body") or body_bytes > _MAX_BODY:
                break
        path: str = scope["path"]
        headers = _headers(scope["headers"])
        self.requests += 1
        self.requests_by_path[path] += 1
        self.seen.append(SeenRequest(scope["method"], path, scope["http_version"], headers))

        status = 200
        extra: dict[str, Any] = {}
        if self.next_hop is not None:
            status, extra["next"] = await self._call_next(path, headers)
        elif match := _STATUS.fullmatch(path):
            status = int(match[1]) if 200 <= int(match[1]) <= 599 else 400
        elif match := _DELAY.fullmatch(path):
            await asyncio.sleep(min(int(match[1]), _MAX_DELAY_MS) / 1000)
        payload = json.dumps(
            {
                **extra,
                "backend": self.name,
                "method": scope["method"],
                "path": path,
                "query": scope["query_string"].decode("latin-1"),
                "http_version": scope["http_version"],
                "headers": headers,
                "body_bytes": body_bytes,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-backend", self.name.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _call_next(self, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        """``GET next_hop + path`` with the trace headers copied: (status, its body)."""
        assert self.next_hop is not None
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=30.0, trust_env=False)
        copied = {k: headers[k] for k in PROPAGATED if k in headers}
        try:
            r = await self._client.get(self.next_hop + path, headers=copied)
        except httpx.HTTPError as e:
            raise_if_cancelling()
            return 502, f"{type(e).__name__}: {e}"
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text[:500]


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in raw:
        name, text = key.decode("latin-1").lower(), value.decode("latin-1")
        headers[name] = f"{headers[name]},{text}" if name in headers else text
    return headers


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
