"""What ``GET /v1/ca`` answers: the CA's roots and intermediates (never a key), the
earliest-expiring workload certificate, the root rotation's phase and what it waits on,
and per proxy the certificate and trust bundle its Envoy ACKed over SDS."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from gossamer.api.schemas import Body
from gossamer.ca.authority import CaCertificate, CertificateAuthority
from gossamer.ca.holders import CONTROL_PLANE, Held
from gossamer.ca.rotation import RotationState
from gossamer.envoy.sds.secrets import bundle_version
from gossamer.registry import Registry
from gossamer.translate.names import IDENTITY_SECRET, TRUST_BUNDLE_SECRET


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


class WorkloadCertificateBody(Body):
    spiffe_id: str
    #: hex
    serial: str
    #: the agent (or gateway host) it was issued to
    holder: str
    issued_at: datetime | None
    not_after: datetime
    #: SHA-256 fingerprint of the root it chains to
    root: str

    @classmethod
    def of(cls, h: Held) -> WorkloadCertificateBody:
        return cls(
            spiffe_id=h.spiffe_id,
            serial=f"{h.serial:x}",
            holder=h.holder,
            issued_at=h.issued_at,
            not_after=h.not_after,
            root=h.root,
        )


class RotationBody(Body):
    #: trusting | issuing | retiring | done
    phase: str
    old_root: str
    new_root: str
    started: datetime
    #: when the phase began (``done``: when the rotation finished)
    since: datetime
    #: what the phase waits on, one line each (empty: moving on)
    waiting: list[str]

    @classmethod
    def of(cls, state: RotationState, waiting: list[str]) -> RotationBody:
        return cls(
            phase=state.phase.value,
            old_root=state.old_root,
            new_root=state.new_root,
            started=state.started,
            since=state.since,
            waiting=waiting,
        )


class ProxySdsBody(Body):
    node_id: str
    #: serial (hex) of the certificate its Envoy ACKed (None: none yet)
    identity: str | None
    #: version of the trust bundle its Envoy ACKed (None: none yet)
    trust_bundle: str | None
    #: whether that is the bundle the CA hands out now
    trust_bundle_current: bool
    #: fingerprint of the root its certificate chains to (None: not issued since start)
    identity_root: str | None


class CaBody(Body):
    trust_domain: str
    #: an operator's intermediate signs and the root's key is offline
    plugged: bool
    #: hosts renew a certificate issued under another version (docs/agent-protocol.md)
    ca_version: str
    trust_bundle_version: str
    roots: list[CaCertificateBody]
    intermediates: list[CaCertificateBody]
    #: the workload certificate that expires first of those hosts hold now (issued since
    #: the control plane started)
    earliest_workload: WorkloadCertificateBody | None
    #: the root rotation under way, or the last one
    rotation: RotationBody | None
    proxies: list[ProxySdsBody]


def proxies_sds(registry: Registry, ca: CertificateAuthority) -> list[ProxySdsBody]:
    """Every proxy that gets secrets over SDS, or whose host reported SDS ACKs."""
    current = bundle_version(ca.trust_bundle_pem())
    acks = registry.sds_acks.all()
    nodes = sorted(set(acks) | registry.plane.monitor.sds_capable())
    out = []
    for node in nodes:
        held = acks.get(node, {})
        serial = held.get(IDENTITY_SECRET)
        record = None
        if serial:
            try:
                record = ca.holders.get(int(serial, 16))
            except ValueError:
                record = None
        out.append(
            ProxySdsBody(
                node_id=node,
                identity=serial,
                trust_bundle=held.get(TRUST_BUNDLE_SECRET),
                trust_bundle_current=held.get(TRUST_BUNDLE_SECRET) == current,
                identity_root=record.root if record is not None else None,
            )
        )
    return out


def ca_body(registry: Registry, ca: CertificateAuthority) -> CaBody:
    certs = [CaCertificateBody.of(c) for c in ca.certificates()]
    now = datetime.now(UTC)
    workloads = [h for h in ca.holders.current() if h.holder != CONTROL_PLANE and h.not_after > now]
    machine = ca.rotation
    rotation = None
    if machine.state is not None:
        progress = machine.progress
        waiting = list(progress.waiting) if progress is not None and machine.active else []
        rotation = RotationBody.of(machine.state, waiting)
    return CaBody(
        trust_domain=ca.trust_domain,
        plugged=ca.plugged,
        ca_version=ca.version,
        trust_bundle_version=bundle_version(ca.trust_bundle_pem()),
        roots=[c for c in certs if c.role == "root"],
        intermediates=[c for c in certs if c.role == "intermediate"],
        earliest_workload=WorkloadCertificateBody.of(workloads[0]) if workloads else None,
        rotation=rotation,
        proxies=proxies_sds(registry, ca),
    )
