"""The telemetry service's HTTP query API (FastAPI), every route behind the bearer token.

- ``GET /v1/topology?since=5m[&view=merged|client|server]``: nodes and edges of a window.
- ``GET /v1/series?since=1h[&source=ns/a][&destination=ns/b][&view=...]``: per-minute
  figures of one edge, or of the requests into (destination) or out of (source) a node.
- ``GET /metrics``: Prometheus text, Istio's metric names and labels (cumulative since
  the process started).
- ``GET /v1/ingestion?since=1h``: streams and entries received, per proxy (node id) over
  the window (kept on disk) and since this process started: compare with each Envoy's
  ``access_logs.grpc_access_log.logs_written`` to find a gap (docs/telemetry.md, "Loss").
- ``GET /v1/traces?...`` and ``GET /v1/traces/{traceId}``: trace search and one trace's
  spans (``traces_query``).

Errors: ``{"code", "errors": [...]}`` as the control plane's API answers them.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gossamer.errors import ValidationError
from gossamer.telemetry.prometheus import metrics_registry
from gossamer.telemetry.query import covered, parse_view, parse_window, series, topology
from gossamer.telemetry.traces_query import check_trace_id, summary, trace_filter, trace_json
from gossamer.telemetry.traces_store import search, trace_spans

if TYPE_CHECKING:
    from gossamer.telemetry.serve import TelemetryService


def _error(status: int, code: str, errors: list[str], **headers: str) -> JSONResponse:
    return JSONResponse({"code": code, "errors": errors}, status_code=status, headers=headers)


def api_app(service: TelemetryService, token: str | None) -> FastAPI:
    """The API over ``service``; ``token`` None: no authentication (loopback only, checked
    by ``ServeSettings``)."""
    app = FastAPI(title="gossamer telemetry", docs_url=None, redoc_url=None, openapi_url=None)
    expected = f"Bearer {token}".encode() if token is not None else None

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Any:
        if expected is not None:
            given = request.headers.get("authorization", "").strip().encode()
            if not hmac.compare_digest(given, expected):
                return _error(
                    401,
                    "unauthenticated",
                    ["send Authorization: Bearer <the token in the service's --token-file>"],
                    **{"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    @app.exception_handler(ValidationError)
    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ValidationError)
        return _error(422, "validation", [str(e) for e in exc.errors])

    def window(since: str) -> tuple[int, int]:
        seconds = parse_window(since)
        return seconds, covered(seconds, service.clock())[0]

    @app.get("/v1/topology")
    async def get_topology(since: str = "5m", view: str = "merged") -> dict[str, Any]:
        seconds = parse_window(since)
        since_minute, covered_s = covered(seconds, service.clock())
        chosen = parse_view(view)
        buckets = await service.buckets(since_minute)
        gaps = await service.gaps(since_minute)
        return topology(buckets, seconds, chosen, covered_s=covered_s, gaps=gaps)

    @app.get("/v1/series")
    async def get_series(
        since: str = "1h",
        source: str | None = None,
        destination: str | None = None,
        view: str = "merged",
    ) -> dict[str, Any]:
        _, since_minute = window(since)
        chosen = parse_view(view)
        points = series(
            await service.buckets(since_minute),
            view=chosen,
            source=source,
            destination=destination,
        )
        return {"source": source, "destination": destination, "view": chosen, "points": points}

    @app.get("/v1/ingestion")
    async def get_ingestion(since: str = "1h") -> dict[str, Any]:
        _, since_minute = window(since)
        servicer = service.servicer
        reconciler = service.reconciler
        # The comparisons first, the gaps after: a flush comparing a sample while the
        # gaps are read would otherwise show the sample compared and not its gap (a node
        # at its final count and "gap": false, in a CI run).
        reconciliation = {
            "samples": reconciler.samples,
            "samplesWaiting": len(reconciler.waiting),
            "lateEntries": reconciler.late,
            "unattributedEntries": reconciler.unattributed,
            "exports": service.metrics.stats.exports,
            "nodes": reconciler.nodes_json(),
        }
        gaps = await service.gaps(since_minute)
        return {
            **servicer.stats.as_json(),
            "entriesByNode": await service.receipts(since_minute),
            "entriesByNodeSinceStart": dict(servicer.received_by_node),
            "gap": any(g.missing > 0 for g in gaps),
            "missingEntries": sum(g.missing for g in gaps),
            "gaps": [g.as_json() for g in gaps if g.missing > 0],
            "otlpExport": service.exporter.stats.as_json() if service.exporter else None,
            "requestStats": service.request_stats.counters.as_json(),
            "reconciliation": reconciliation,
            "traces": {
                **service.sampler.stats.as_json(),
                "exports": service.traces.exports,
                "pendingTraces": service.sampler.pending_traces,
            },
        }

    @app.get("/v1/traces")
    async def get_traces(
        since: str = "1h",
        service_name: Annotated[str | None, Query(alias="service")] = None,
        status: str | None = None,
        min_duration_ms: Annotated[float | None, Query(alias="minDurationMs")] = None,
        request_id: Annotated[str | None, Query(alias="requestId")] = None,
        limit: int = 20,
    ) -> dict[str, Any]:
        _, since_minute = window(since)
        chosen = trace_filter(
            since_minute,
            service=service_name,
            status=status,
            min_duration_ms=min_duration_ms,
            request_id=request_id,
            limit=limit,
        )
        found = await service.store.call(search, chosen)
        return {"traces": [summary(spans) for spans in found]}

    @app.get("/v1/traces/{trace_id}")
    async def get_trace(trace_id: str) -> Any:
        spans = await service.store.call(trace_spans, check_trace_id(trace_id))
        if not spans:
            return _error(
                404,
                "not_found",
                [
                    f"trace {trace_id[:40]}: not stored (dropped by sampling, expired, or "
                    "not decided yet: a trace is stored once quiet for --trace-decision-wait)"
                ],
            )
        return trace_json(spans)

    registry = metrics_registry(service.aggregator, service.servicer)

    @app.get("/metrics")
    async def get_metrics() -> Response:
        """Istio's request metrics and the service's own (``telemetry.prometheus``)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
