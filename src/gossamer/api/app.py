"""``create_api``: the control plane's REST API around one ``ControlPlaneService``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import prometheus_client
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response

import gossamer
from gossamer.api.agents import install_agents
from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.authz import install_authz
from gossamer.api.body_limits import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_RESOURCE_BYTES
from gossamer.api.certificates import install_certificates
from gossamer.api.describe import describe_router
from gossamer.api.docs_pages import install_docs_pages
from gossamer.api.errors import install_error_handlers
from gossamer.api.forgery import RequestOrigin
from gossamer.api.host_requests import host_requests_router
from gossamer.api.limits import RequestLimits
from gossamer.api.operator_tokens import install_operator_tokens
from gossamer.api.proxies import proxies_router
from gossamer.api.resources import resources_router
from gossamer.api.schemas import StatusBody
from gossamer.api.statistics import statistics_body
from gossamer.authz.service import AuthzService
from gossamer.ca.authority import CertificateAuthority
from gossamer.controlplane.service import ControlPlaneService
from gossamer.envoy.binary import expected_version
from gossamer.registry import Registry
from gossamer.registry.dumps import DumpBroker
from gossamer.registry.operators import OperatorTokens


def _ops_router(
    service: ControlPlaneService,
    metrics: prometheus_client.CollectorRegistry,
    agents: Registry | None,
    authz: AuthzService | None,
    auth: Authenticator | None,
    store_problem: Callable[[], str | None] | None = None,
) -> APIRouter:
    router = APIRouter(tags=["operations"])
    operator = [require_operator(auth)]

    @router.get("/healthz", response_model=StatusBody)
    async def healthz() -> StatusBody:
        """The API process is up."""
        return StatusBody(status="ok")

    @router.get("/readyz", response_model=StatusBody, responses={503: {"model": StatusBody}})
    async def readyz() -> Any:
        """Ready once the control plane has loaded its state and serves proxies, and while
        its store answers (503 ``store_unreachable`` with a ``detail`` saying since when)."""
        if not service.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        problem = store_problem() if store_problem is not None else None
        if problem is not None:
            body = {"status": "store_unreachable", "detail": problem}
            return JSONResponse(body, status_code=503)
        return StatusBody(status="ready")

    @router.get("/metrics", response_class=Response, dependencies=operator)
    async def metrics_text() -> Response:
        """Prometheus text exposition of the control plane's metrics."""
        return Response(
            prometheus_client.generate_latest(metrics),
            media_type=prometheus_client.CONTENT_TYPE_LATEST,
        )

    @router.get("/v1/version", response_model=dict[str, str], dependencies=operator)
    async def version() -> dict[str, str]:
        """This control plane's version and the Envoy release it generates config for."""
        return {"gossamer": gossamer.__version__, "envoy": expected_version()}

    @router.get("/v1/statistics", response_model=dict[str, Any], dependencies=operator)
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
    operators: OperatorTokens | None = None,
    admin_token_file: str = "<data-dir>/admin.token",
    api_hosts: Sequence[str] | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_resource_bytes: int = DEFAULT_MAX_RESOURCE_BYTES,
    store_problem: Callable[[], str | None] | None = None,
    dumps: DumpBroker | None = None,
) -> FastAPI:
    """A FastAPI app serving ``service``; ``/metrics`` exposes ``metrics`` (Prometheus);
    with ``agents`` (the agent registry), the agent protocol too (docs/agent-protocol.md),
    and with ``ca`` as well, the CA's routes (workload certificates, ``/v1/ca``).
    A request body over ``max_request_bytes`` is refused before it is parsed, a resource
    over ``max_resource_bytes`` (as JSON) before it is validated. ``store_problem`` says
    what is wrong with the store (None: nothing); ``/readyz`` answers 503 while it does.
    ``dumps`` holds the hosts' long-polls (a new one if not given; its owner releases it
    when the server stops).

    With ``operators`` every operator route needs an operator token (``api.auth``; the 401
    names ``admin_token_file``), and its routes are served; without, anyone is let in (for
    tests of the routes only: the server always passes them). A write whose body is not
    JSON is refused; with ``api_hosts``, so is a ``Host`` not among them, IP addresses and
    localhost (``api.forgery``).

    Nothing global: two apps around two services in one process do not share anything.
    """
    app = FastAPI(
        title="Gossamer control plane",
        version=gossamer.__version__,
        description="Apply, read and delete mesh resources; see the proxies' status.",
        docs_url=None,  # /docs and /redoc with local assets (api.docs_pages)
        redoc_url=None,
    )
    install_docs_pages(app)
    auth = Authenticator(operators, admin_token_file) if operators is not None else None
    install_error_handlers(app)
    app.add_middleware(RequestLimits, max_bytes=max_request_bytes)
    app.add_middleware(RequestOrigin, names=api_hosts)  # outermost: before the body is read
    app.include_router(resources_router(service, max_resource_bytes, auth))
    dumps = dumps or DumpBroker()  # config dumps asked of hosts (api.host_requests)
    app.include_router(proxies_router(service, auth, agents=agents, dumps=dumps, metrics=metrics))
    app.include_router(_ops_router(service, metrics, agents, authz, auth, store_problem))
    if agents is not None:
        install_agents(app, agents, auth)
        app.include_router(host_requests_router(agents, dumps))
        app.include_router(describe_router(agents, dumps, auth))
    if authz is not None:
        install_authz(app, authz, auth)
    if agents is not None and ca is not None:
        install_certificates(app, agents, ca, auth)
    if operators is not None:
        install_operator_tokens(app, operators, auth)
    return app
