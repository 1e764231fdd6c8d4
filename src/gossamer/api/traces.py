"""Trace search and one trace's spans, forwarded to the telemetry service like its other
query routes (``api.telemetry``; docs/telemetry.md, "Traces").

``GET /v1/traces?...`` and ``GET /v1/traces/{traceId}`` go with their query to the
telemetry service's API with its bearer token; the answer comes back as it is (a bad
parameter is its 422, an unknown trace its 404). The control plane's own auth applies
first (the read right on the API); a service that does not answer is a 503.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.telemetry import TelemetryUpstream
from gossamer.errors import TelemetryUnavailableError


def install_traces(app: FastAPI, upstream: TelemetryUpstream, auth: Authenticator) -> None:
    """``/v1/traces`` and ``/v1/traces/{trace_id}``, behind the operator's read right."""
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

    for path in ("/v1/traces", "/v1/traces/{trace_id}"):
        router.add_api_route(
            path,
            forward,
            methods=["GET"],
            summary=f"the telemetry service's {path} (docs/telemetry.md)",
            response_model=None,
        )
    app.include_router(router)
