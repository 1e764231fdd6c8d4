"""Who may subscribe to xDS as which proxy (the server's certificate, shared with the
REST API, is ``server.server_certificate``)."""

from __future__ import annotations

import logging

from gossamer.ca.authority import CertificateAuthority
from gossamer.controlplane.plane import ControlPlane
from gossamer.model.internal import Agent
from gossamer.types import OWNER_LABEL, ProxyIdentity
from gossamer.xds.auth import Peer, Registration, Verdict, XdsTlsMode, check_node
from gossamer.xds.server import Authorizer

log = logging.getLogger(__name__)


def registrations(plane: ControlPlane, proxy: ProxyIdentity) -> Registration | None:
    """Who may hold ``proxy``'s certificate, and what it serves: a sidecar's Workload's
    agent and service; a gateway's active hosts (agents whose join token names it, several
    for replicas) and its own name. None for a Workload no agent registered or a gateway
    no active host holds a token for."""
    model = plane.model
    if model is None:
        return None
    if proxy.kind == "gateway":
        ref = f"{proxy.namespace}/{proxy.name}"
        hosts = frozenset(
            r.metadata.name
            for k, r in model.resources.items()
            if k.kind == "Agent"
            and isinstance(r, Agent)
            and not r.spec.revoked
            and r.spec.scope is not None
            and r.spec.scope.gateway == ref
        )
        return Registration(hosts, proxy.namespace, proxy.name) if hosts else None
    workload = model.workloads.get((proxy.namespace, proxy.name))
    if workload is None:
        return None
    holder = workload.metadata.labels.get(OWNER_LABEL)
    if holder is None:
        return None
    return Registration(frozenset({holder}), workload.metadata.namespace, workload.spec.service)


def xds_authorizer(plane: ControlPlane, ca: CertificateAuthority, mode: XdsTlsMode) -> Authorizer:
    """``check_node`` over the plane's model and the CA's issuance record."""
    warned: set[int] = set()

    def authorize(proxy: ProxyIdentity, peer: Peer) -> Verdict:
        verdict = check_node(
            proxy,
            peer,
            mode=mode,
            registration=lambda p: registrations(plane, p),
            holder_of=ca.holders.holder_of,
            recorded_since=ca.holders.started,
        )
        if verdict.holder_unknown and peer.serial is not None and peer.serial not in warned:
            warned.add(peer.serial)
            log.warning(
                "%s subscribes as %s with a certificate issued before this control plane "
                "started: checked its identity only, until its agent renews it",
                peer.describe(),
                proxy.node_id,
            )
        return verdict

    return authorize
