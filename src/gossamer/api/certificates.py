"""Routes of the mesh CA: a host gets a workload certificate for what it registered
(``POST /v1/agents/{agent_id}/certificates``, agent credential), and operators read the CA's
roots and intermediates (``GET /v1/ca``; never a key).

The host sends a CSR for a key it made and keeps; the server decides the identity from the
service the agent names, and refuses (403) a service the agent registered no Workload of.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, FastAPI
from pydantic import Field

from gossamer.api.agents import UnauthorizedBody, require_agent
from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.readiness import require_ready
from gossamer.api.schemas import Body, ErrorBody
from gossamer.ca.authority import CaCertificate, CertificateAuthority
from gossamer.ca.csr import MAX_CSR_BYTES
from gossamer.errors import FieldError, PermissionDeniedError, ValidationError
from gossamer.registry import Registry
from gossamer.types import DEFAULT_NAMESPACE, spiffe_id

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": UnauthorizedBody, "description": "missing, wrong or revoked credential"},
    403: {"model": ErrorBody, "description": "the agent registered no Workload of that service"},
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


class CaCertificateBody(Body):
    role: Literal["root", "intermediate"]
    subject: str
    #: hex
    serial: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    #: whether the CA signs workload certificates with this one's key
    signing: bool

    @classmethod
    def of(cls, c: CaCertificate) -> CaCertificateBody:
        return cls(
            role=c.role,
            subject=c.subject,
            serial=f"{c.serial:x}",
            not_before=c.not_before,
            not_after=c.not_after,
            fingerprint_sha256=c.fingerprint,
            signing=c.signing,
        )


class CaBody(Body):
    trust_domain: str
    #: an operator's intermediate signs and the root's key is offline
    plugged: bool
    roots: list[CaCertificateBody]
    intermediates: list[CaCertificateBody]


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
        )

    @router.get("/ca", response_model=CaBody, dependencies=[require_operator(auth)])
    async def status() -> CaBody:
        """The CA's roots and intermediates: subject, serial, validity (never a key)."""
        certs = [CaCertificateBody.of(c) for c in ca.certificates()]
        return CaBody(
            trust_domain=ca.trust_domain,
            plugged=ca.plugged,
            roots=[c for c in certs if c.role == "root"],
            intermediates=[c for c in certs if c.role == "intermediate"],
        )

    return router


def install_certificates(
    app: FastAPI, registry: Registry, ca: CertificateAuthority, auth: Authenticator | None = None
) -> None:
    """Serve the CA's routes on ``app``."""
    app.include_router(certificates_router(registry, ca, auth))
