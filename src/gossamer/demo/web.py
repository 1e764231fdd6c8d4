"""The demo's front service: each page calls catalog and reviews (HTTP) and ratings (gRPC)
through its sidecar, at the stable local addresses the mesh gave those services."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from types import TracebackType
from typing import Any, Self

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config

from gossamer.testing.backends import EchoClient


class WebApp:
    def __init__(self, host: str, catalog: str, reviews: str, ratings: tuple[str, int]) -> None:
        self.host = host
        self.catalog = catalog
        self.reviews = reviews
        self.ratings = ratings
        self.address: tuple[str, int] = (host, 0)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._grpc: EchoClient | None = None

    async def __aenter__(self) -> Self:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(128)
        self.address = sock.getsockname()[:2]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.accesslog = None
        config.errorlog = logging.getLogger(__name__)
        self._http = httpx.AsyncClient(timeout=5)
        self._grpc = EchoClient(self.ratings)
        self._task = asyncio.create_task(
            serve(self._app, config, shutdown_trigger=self._stop.wait),  # type: ignore[arg-type]
            name="demo web",
        )
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        if self._http is not None:
            await self._http.aclose()
        if self._grpc is not None:
            await self._grpc.__aexit__(None, None, None)

    async def _page(self) -> dict[str, Any]:
        assert self._http is not None and self._grpc is not None
        catalog, reviews, rating = await asyncio.gather(
            self._http.get(f"{self.catalog}/items"),
            self._http.get(f"{self.reviews}/reviews"),
            self._grpc.unary(b"stars", timeout_s=5),
        )
        catalog.raise_for_status()
        reviews.raise_for_status()
        return {
            "catalog": catalog.json()["backend"],
            "reviews": reviews.json()["backend"],
            "ratings": rating.decode(),
        }

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        try:
            status, body = 200, await self._page()
        except Exception as e:  # the demo shows dependency failures as 502s
            status, body = 502, {"error": f"{type(e).__name__}: {e}"}
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})
