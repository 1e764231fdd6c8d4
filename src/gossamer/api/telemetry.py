"""The telemetry service's query API, forwarded by the control plane's API
(docs/telemetry.md, "Through the control plane").

``GET /v1/topology``, ``/v1/series`` and ``/v1/ingestion`` go, with their query, to the
telemetry service's HTTP API (``gossamer telemetry serve --http``) with its bearer token
(read from its token file at each request, so a token put there later is used at once),
and its answer comes back as it is (a bad window is its 422). The control plane's own auth
applies first: the read right on the API, as for any ``GET``. A service that does not
answer (starting, restarting, down, or none configured) is a 503 saying which and where
to look; nothing is cached or made up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from gossamer.api.auth import Authenticator, require_operator
from gossamer.cancel import raise_if_cancelling
from gossamer.errors import TelemetryUnavailableError

#: the query endpoints forwarded as they are
FORWARDED = ("/v1/topology", "/v1/series", "/v1/ingestion")
#: how long the control plane waits for the telemetry service's answer (s)
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TelemetryUpstream:
    """The telemetry service's query API as the control plane reaches it."""

    #: ``http://HOST:PORT``; None: not known (``--telemetry HOST:PORT`` without
    #: ``--telemetry-http``)
    url: str | None
    #: the file holding its bearer token (``<data-dir>/telemetry.token``)
    token_file: Path
    #: what is wrong when it does not answer (``--telemetry off``, where its log is)
    hint: str

    async def token(self) -> str:
        try:
            text = await asyncio.to_thread(self.token_file.read_text, encoding="utf-8")
        except OSError as e:
            raise TelemetryUnavailableError(
                f"the telemetry service's token file {self.token_file} cannot be read "
                f"({e.strerror}); put the token its --token-file holds there (0600)"
            ) from None
        return text.strip()

    async def get(self, path: str, query: str) -> httpx.Response:
        """The service's answer to ``GET path?query``; ``TelemetryUnavailableError`` if it
        gives none, or refuses the control plane's token. ``path`` is decoded, as the
        caller's request had it (``/v1/traces/{id}`` with any character in the id): it is
        percent-encoded again on its way on."""
        if self.url is None:
            raise TelemetryUnavailableError(f"no telemetry query API is known: {self.hint}")
        headers = {"authorization": f"Bearer {await self.token()}"}
        target = f"{self.url}{quote(path, safe='/')}" + (f"?{query}" if query else "")
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_S, trust_env=False) as client:
                answer = await client.get(target, headers=headers)
        except httpx.HTTPError as e:
            raise_if_cancelling()
            raise TelemetryUnavailableError(
                f"the telemetry service at {self.url} did not answer ({type(e).__name__}: "
                f"{e or 'no detail'}): it may be starting or restarting; {self.hint}"
            ) from None
        if answer.status_code == 401:
            raise TelemetryUnavailableError(
                f"the telemetry service at {self.url} refused the token in {self.token_file}; "
                "put the token its --token-file holds there"
            )
        return answer


def install_telemetry(
    app: FastAPI, upstream: TelemetryUpstream, auth: Authenticator | None
) -> None:
    """The forwarded query routes, each behind the operator's read right."""
    router = APIRouter(tags=["telemetry"], dependencies=[require_operator(auth)])

    async def forward(request: Request) -> JSONResponse:
        answer = await upstream.get(request.url.path, request.url.query)
        try:
            body: Any = answer.json()
        except ValueError:
            raise TelemetryUnavailableError(
                f"the telemetry service at {upstream.url} answered {answer.status_code} "
                f"without JSON: {answer.text[:200]!r}"
            ) from None
        return JSONResponse(body, status_code=answer.status_code)

    for path in FORWARDED:
        router.add_api_route(
            path,
            forward,
            methods=["GET"],
            summary=f"the telemetry service's {path} (docs/telemetry.md)",
            response_model=None,
        )
    app.include_router(router)
