"""Who may subscribe as which proxy: the peer's certificate against what its host registered.

An Envoy run by an agent connects to xDS over mTLS with its workload certificate (SVID,
``spiffe://<td>/ns/<namespace>/sa/<service>``, issued to that agent). It may subscribe
only as a proxy whose Workload that same agent registered, of that same service
(``check_node``). A client without a certificate (plaintext, or the ``optional`` mode's
plaintext port) is anonymous: refused in ``required`` mode, and in ``optional`` mode
refused for a node id that already has an authenticated stream (``AdsStream``).

docs/security.md, "xDS", is the user's side of these rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from cryptography import x509

from gossamer.errors import ConfigError, PermissionDeniedError, ValidationError
from gossamer.types import ProxyIdentity, parse_spiffe_id

#: ``off``: plaintext xDS only; ``optional``: plaintext and mTLS (two ports);
#: ``required``: mTLS only (anonymous clients get nothing)
XdsTlsMode = Literal["off", "optional", "required"]
XDS_TLS_MODES: tuple[str, ...] = get_args(XdsTlsMode)


def xds_tls_mode(text: str) -> XdsTlsMode:
    """``--xds-tls`` parsed; ``ConfigError`` names the valid values."""
    for mode in get_args(XdsTlsMode):
        if text == mode:
            return mode  # type: ignore[no-any-return]
    raise ConfigError(f"--xds-tls: {text!r} is not one of {', '.join(XDS_TLS_MODES)}")


@dataclass(frozen=True, slots=True)
class Peer:
    """The client of one xDS stream as its TLS handshake proved it (or did not)."""

    #: the URI SAN of its verified client certificate; None: anonymous
    spiffe_id: str | None = None
    serial: int | None = None
    not_before: datetime | None = None

    @property
    def authenticated(self) -> bool:
        return self.spiffe_id is not None

    def describe(self) -> str:
        if self.spiffe_id is None:
            return "an anonymous client"
        return f"{self.spiffe_id} (certificate {self.serial:x})"


ANONYMOUS = Peer()


def peer_of(auth_context: Mapping[str, Sequence[bytes]]) -> Peer:
    """The peer gRPC verified (``context.auth_context()``): its certificate's URI SAN and
    serial. No certificate (plaintext port) is ``ANONYMOUS``; a certificate with no URI
    SAN, or with several, is anonymous too (it names no workload)."""
    pems = auth_context.get("x509_pem_cert") or ()
    if not pems:
        return ANONYMOUS
    cert = x509.load_pem_x509_certificate(pems[0])
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return ANONYMOUS
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        return ANONYMOUS
    return Peer(uris[0], cert.serial_number, cert.not_valid_before_utc)


@dataclass(frozen=True, slots=True)
class Registration:
    """What the control plane's model says of one proxy: who registered it, and whose
    identity it serves (a sidecar: its Workload's service; a gateway: its own name)."""

    #: the agents (ids) whose certificates may subscribe as it: a sidecar's, the one that
    #: registered its Workload; a gateway's, every active host holding its join token
    holders: frozenset[str]
    namespace: str
    service: str


#: the registration of a proxy, None if nobody registered it (or it takes no certificate)
Registrations = Callable[[ProxyIdentity], Registration | None]
#: to whom the CA issued a certificate (by serial), None if unrecorded
HolderOf = Callable[[int], str | None]


@dataclass(frozen=True, slots=True)
class Verdict:
    """An accepted stream: the proxy, the peer, and how sure we are of the holder."""

    proxy: ProxyIdentity
    peer: Peer
    #: the holder was not recorded (issued before this control plane started): only the
    #: service was checked
    holder_unknown: bool = False


def check_node(
    proxy: ProxyIdentity,
    peer: Peer,
    *,
    mode: XdsTlsMode,
    registration: Registrations,
    holder_of: HolderOf,
    recorded_since: datetime,
) -> Verdict:
    """May ``peer`` subscribe as ``proxy``? ``PermissionDeniedError`` (a message saying
    why and what to do) if not.

    An anonymous peer may, unless ``mode`` is ``required``. An authenticated one must hold
    a workload certificate of the namespace and service of the Workload the node names,
    and the agent it was issued to must be the one that registered that Workload; for a
    gateway node, the gateway's own identity (``ns/<ns>/sa/<name>``), issued to a host
    holding that gateway's join token. A
    certificate valid from before ``recorded_since`` (issued by an earlier run of the
    control plane: the holder record is in memory) is judged by its identity alone.
    """
    node = proxy.node_id
    if not peer.authenticated:
        if mode == "required":
            raise PermissionDeniedError(
                f"xDS for {node} needs a client certificate from the mesh CA (--xds-tls "
                "required): run the Envoy through `gossamer agent run --xds-tls HOST:PORT`"
            )
        return Verdict(proxy, peer)
    assert peer.spiffe_id is not None and peer.serial is not None
    try:
        _, namespace, service = parse_spiffe_id(peer.spiffe_id)
    except ValidationError:
        raise _denied(proxy, peer, "it is not a workload identity") from None
    if namespace != proxy.namespace:
        raise _denied(proxy, peer, f"the node is in namespace {proxy.namespace}")
    if proxy.kind == "gateway":
        found = _gateway_registration(proxy, peer, service, registration)
    else:
        found = _workload_registration(proxy, peer, service, registration)
    holder = holder_of(peer.serial)
    if holder is None:
        if peer.not_before is not None and peer.not_before >= recorded_since:
            raise _denied(proxy, peer, "this control plane has no record of issuing it")
        return Verdict(proxy, peer, holder_unknown=True)
    if holder not in found.holders:
        who = "agent " + ", ".join(sorted(found.holders))
        did = "holds its join token" if proxy.kind == "gateway" else "registered the node"
        raise _denied(proxy, peer, f"it was issued to agent {holder}, and {who} {did}")
    return Verdict(proxy, peer)


def _workload_registration(
    proxy: ProxyIdentity, peer: Peer, service: str, registration: Registrations
) -> Registration:
    """A sidecar node: the certificate's service is its Workload's."""
    if proxy.service is not None and proxy.service != service:
        raise _denied(proxy, peer, f"the node says it serves {proxy.service}")
    found = registration(proxy)
    if found is None:
        raise _denied(proxy, peer, f"no Workload {proxy.namespace}/{proxy.name} is registered")
    if (found.namespace, found.service) != (proxy.namespace, service):
        raise _denied(
            proxy, peer, f"Workload {proxy.namespace}/{proxy.name} serves {found.service}"
        )
    return found


def _gateway_registration(
    proxy: ProxyIdentity, peer: Peer, service: str, registration: Registrations
) -> Registration:
    """A gateway node: the certificate names that gateway, and a host holds its token."""
    ref = f"{proxy.namespace}/{proxy.name}"
    if service != proxy.name:
        raise _denied(proxy, peer, f"it names {service}, not gateway {ref}")
    found = registration(proxy)
    if found is None or not found.holders:
        raise _denied(proxy, peer, f"no gateway host holds a join token for gateway {ref}")
    return found


def _denied(proxy: ProxyIdentity, peer: Peer, why: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"{peer.describe()} may not subscribe as {proxy.node_id}: {why}; an Envoy subscribes "
        "only as a proxy its own agent registered (a gateway: as the gateway its host's "
        "join token names), with that host's certificate"
    )
