"""``create_api``: the control plane's REST API around one ``ControlPlaneService``."""

from __future__ import annotations

from typing import Any

import prometheus_client
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response

import gossamer
from gossamer.api.agents import install_agents
from gossamer.api.authz import install_authz
from gossamer.api.certificates import install_certificates
from gossamer.api.errors import install_error_handlers
from gossamer.api.limits import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_RESOURCE_BYTES,
    RequestLimits,
)
from gossamer.api.proxies import proxies_router
from gossamer.api.resources import resources_router
from gossamer.api.schemas import StatusBody
from gossamer.api.statistics import statistics_body
from gossamer.authz.service import AuthzService
from gossamer.ca.authority import CertificateAuthority
from gossamer.controlplane.service import ControlPlaneService
from gossamer.registry import Registry


def _ops_router(
    service: ControlPlaneService,
    metrics: prometheus_client.CollectorRegistry,
    agents: Registry | None,
    authz: AuthzService | None,
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=StatusBody)
    async def healthz() -> StatusBody:
        """The API process is up."""
        return StatusBody(status="ok")

    @router.get("/readyz", response_model=StatusBody, responses={503: {"model": StatusBody}})
    async def readyz() -> Any:
        """Ready once the control plane has loaded its state and serves proxies."""
        if service.ready:
            return StatusBody(status="ready")
        return JSONResponse({"status": "starting"}, status_code=503)

    @router.get("/metrics", response_class=Response)
    async def metrics_text() -> Response:
        """Prometheus text exposition of the control plane's metrics."""
        return Response(
            prometheus_client.generate_latest(metrics),
            media_type=prometheus_client.CONTENT_TYPE_LATEST,
        )

    @router.get("/v1/statistics", response_model=dict[str, Any])
    async def statistics() -> dict[str, Any]:
        """Each component's counters: plane, store, xds, authz, registry (docs/resources.md)."""
        return statistics_body(service, authz, agents)

    return router


def create_api(
    service: ControlPlaneService,
    *,
    metrics: prometheus_client.CollectorRegistry,
    agents: Registry | None = None,
    authz: AuthzService | None = None,
    ca: CertificateAuthority | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_resource_bytes: int = DEFAULT_MAX_RESOURCE_BYTES,
) -> FastAPI:
    """A FastAPI app serving ``service``; ``/metrics`` exposes ``metrics`` (Prometheus);
    with ``agents`` (the agent registry), the agent protocol too (docs/agent-protocol.md),
    and with ``ca`` as well, the CA's routes (workload certificates, ``/v1/ca``).
    A request body over ``max_request_bytes`` is refused before it is parsed, a resource
    over ``max_resource_bytes`` (as JSON) before it is validated.

    Nothing global: two apps around two services in one process do not share anything.
    """
    app = FastAPI(
        title="Gossamer control plane",
        version=gossamer.__version__,
        description="Apply, read and delete mesh resources; see the proxies' status.",
    )
    install_error_handlers(app)
    app.add_middleware(RequestLimits, max_bytes=max_request_bytes)
    app.include_router(resources_router(service, max_resource_bytes))
    app.include_router(proxies_router(service))
    app.include_router(_ops_router(service, metrics, agents, authz))
    if agents is not None:
        install_agents(app, agents)
    if authz is not None:
        install_authz(app, authz)
    if agents is not None and ca is not None:
        install_certificates(app, agents, ca)
    return app
