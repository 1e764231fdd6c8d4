"""Routes of the mesh CA: a host gets a workload certificate for what it registered
(``POST /v1/agents/{agent_id}/certificates``, agent credential); operators read the CA's
state (``GET /v1/ca``; never a key) and start a root rotation (``POST /v1/ca/rotation``).

The host sends a CSR for a key it made and keeps; the server decides the identity from the
service the agent names, and refuses (403) a service the agent registered no Workload of
(a gateway's host: any service but its gateway's ``NS/NAME``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import Field

from gossamer.api.agents import UnauthorizedBody, require_agent
from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.ca_status import CaBody, ca_body
from gossamer.api.readiness import require_ready
from gossamer.api.schemas import Body, ErrorBody
from gossamer.ca.authority import CertificateAuthority
from gossamer.ca.csr import MAX_CSR_BYTES
from gossamer.errors import FieldError, PermissionDeniedError, ValidationError
from gossamer.registry import Registry
from gossamer.types import DEFAULT_NAMESPACE, spiffe_id

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": UnauthorizedBody, "description": "missing, wrong or revoked credential"},
    403: {
        "model": ErrorBody,
        "description": "the agent registered no Workload of that service (a gateway's host: "
        "it is not its gateway)",
    },
    422: {"model": ErrorBody, "description": "a bad service name or CSR: nothing issued"},
    503: {"model": ErrorBody, "description": "still loading"},
}


class CertificateRequest(Body):
    #: ``namespace/name`` of a service the agent registered a Workload of (``name`` alone:
    #: the ``default`` namespace)
    service: str = Field(max_length=127)
    #: PEM certificate signing request for a key the host made (its subject is ignored)
    csr: str = Field(max_length=MAX_CSR_BYTES)


class CertificateResponse(Body):
    #: the workload certificate, then any intermediates (PEM)
    certificate_chain: str
    #: every root the mesh trusts (PEM): verify peers with this
    trust_bundle: str
    not_after: datetime
    #: the certificate's serial number, hex
    serial: str
    spiffe_id: str
    #: the CA's version it was issued under: when a heartbeat answer names another, the
    #: host renews at once (docs/agent-protocol.md)
    ca_version: str


def _service(text: str) -> tuple[str, str]:
    namespace, _, name = text.rpartition("/")
    return namespace or DEFAULT_NAMESPACE, name


def certificates_router(
    registry: Registry, ca: CertificateAuthority, auth: Authenticator | None = None
) -> APIRouter:
    router = APIRouter(
        prefix="/v1", tags=["ca"], responses=_ERRORS, dependencies=[require_ready(registry.plane)]
    )

    @router.post(
        "/agents/{agent_id}/certificates",
        response_model=CertificateResponse,
        dependencies=[require_agent(registry)],
    )
    async def issue(agent_id: str, body: CertificateRequest) -> CertificateResponse:
        """A workload certificate for a service this agent registered a Workload of."""
        namespace, name = _service(body.service)
        try:
            identity = spiffe_id(ca.trust_domain, namespace, name)
        except ValidationError as e:
            problem = e.errors[0].message
            raise ValidationError([FieldError(problem, "service")]) from None
        if not registry.serves(agent_id, namespace, name):
            scope = registry.info(agent_id).scope
            if scope is not None and scope.gateway is not None:
                raise PermissionDeniedError(
                    f"agent {agent_id} is a host of gateway {scope.gateway} (its join token's "
                    f"scope): it gets certificates for service {scope.gateway} only, not "
                    f"{namespace}/{name}"
                )
            raise PermissionDeniedError(
                f"agent {agent_id} registered no Workload of service {namespace}/{name}: a host "
                "gets certificates only for the services it serves; register the Workload first"
            )
        model = registry.plane.model
        assert model is not None  # require_ready
        ttl = model.mesh.spec.mtls.certificateTTL
        issued = ca.sign(body.csr.encode(), spiffe_id=identity, ttl=ttl, holder=agent_id)
        return CertificateResponse(
            certificate_chain=issued.chain_pem.decode(),
            trust_bundle=ca.trust_bundle_pem().decode(),
            not_after=issued.not_after,
            serial=f"{issued.serial:x}",
            spiffe_id=identity,
            ca_version=ca.version,
        )

    @router.get("/ca", response_model=CaBody, dependencies=[require_operator(auth)])
    async def status() -> CaBody:
        """The CA's roots and intermediates (subject, serial, validity; never a key), the
        earliest-expiring workload certificate, the root rotation and what it waits on,
        and what each proxy's Envoy ACKed over SDS."""
        return ca_body(registry, ca)

    @router.post(
        "/ca/rotation",
        response_model=CaBody,
        status_code=202,
        dependencies=[require_operator(auth)],
        responses={409: {"model": ErrorBody, "description": "under way, or a plugged CA"}},
    )
    async def rotate() -> CaBody:
        """Start a root rotation: a new root is trusted beside the old one; the control
        plane moves every host to it, then retires the old root (docs/security.md)."""
        await ca.start_rotation()
        return ca_body(registry, ca)

    return router


def install_certificates(
    app: FastAPI, registry: Registry, ca: CertificateAuthority, auth: Authenticator | None = None
) -> None:
    """Serve the CA's routes on ``app``."""
    app.include_router(certificates_router(registry, ca, auth))
