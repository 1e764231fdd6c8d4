"""``ExternalService``: something outside the mesh (host names or addresses, one port) that
workloads list as a dependency and reach through their sidecar, at a stable local address,
with the mesh's timeouts, retries, Routes and TrafficPolicies.

Names are shared with ``Service``: a dependency, Route or TrafficPolicy names either kind,
and a Service and an ExternalService of one name in one namespace are refused
(``gossamer.model.external_checks``).

``https``: the app speaks plain HTTP to its local address and the sidecar originates TLS
(SNI and certificate verification against ``tls.sni`` or the one host name; trusted CAs
``tls.ca``, else the sidecar host's system bundle). ``tls``: the app speaks TLS itself and
the sidecar passes the bytes through. ``tcp``: bytes through. ``http``: plain HTTP.

``tls.caFile`` is read by ``gossamer apply`` (relative to the manifest's file) and sent as
``tls.ca``: the stored resource, and so every proxy, carries the PEM inline and no proxy
host needs a copy of the file. The API refuses a ``caFile`` it is sent.

``via: {gateway}``: callers' sidecars send their requests for it to that Gateway (over the
mesh, mTLS when both can), which alone reaches the outside, on a listener of its own at
``via.port`` (default: the external port); ``gossamer.translate.egress_gateway``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from cryptography import x509
from pydantic import AfterValidator, Field, field_validator, model_validator

from gossamer.model.base import IPAddress, LoopbackAddress, Name, Port, Resource, Strict

ExternalProtocol = Literal["http", "https", "tcp", "tls"]
#: protocols whose traffic the sidecar routes as HTTP (Routes and HTTP retries apply)
HTTP_EXTERNAL: frozenset[str] = frozenset({"http", "https"})

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _hostname(value: str) -> str:
    """A DNS name Envoy can resolve: lower-case labels, no wildcard, not an address."""
    name = value.lower().removesuffix(".")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise ValueError(f"{value!r} is an IP address: list it under addresses, not hosts")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(
            f"{value!r} is not a host name: use DNS labels of letters, digits and '-' "
            "separated by dots, e.g. 'api.example.com' (no wildcards, no port)"
        )
    return name


Hostname = Annotated[str, AfterValidator(_hostname)]


def _pem(value: str) -> str:
    if "-----BEGIN CERTIFICATE-----" not in value:
        raise ValueError(
            "is not PEM: give the CA certificate(s) as text starting with "
            "'-----BEGIN CERTIFICATE-----' (or caFile: a path gossamer apply reads)"
        )
    try:
        x509.load_pem_x509_certificates(value.encode())
    except ValueError as e:
        raise ValueError(f"holds a certificate that does not parse ({e}): check the PEM") from None
    return value


class ExternalTls(Strict):
    """How the sidecar originates TLS for an ``https`` external service."""

    #: PEM of the CA certificate(s) the server's certificate must chain to (default: the
    #: system bundle on the sidecar's host)
    ca: Annotated[str, AfterValidator(_pem)] | None = None
    #: a file holding ``ca``, read by ``gossamer apply`` relative to the manifest
    caFile: Annotated[str, Field(min_length=1)] | None = None
    #: the name sent as SNI and checked against the certificate's DNS names (default: the
    #: one host name)
    sni: Hostname | None = None

    @model_validator(mode="after")
    def _one_ca(self) -> ExternalTls:
        if self.ca is not None and self.caFile is not None:
            raise ValueError("give ca (PEM) or caFile, not both")
        return self


class EgressVia(Strict):
    """The egress gateway an external service is reached through."""

    #: the Gateway (in ``namespace``) whose Envoy originates the connection
    gateway: Name
    #: the Gateway's namespace (default: the external service's)
    namespace: Name | None = None
    #: the port the gateway listens on for this service, at its ``spec.address``
    #: (default: the external service's ``port``)
    port: Port | None = None


class ExternalServiceSpec(Strict):
    #: DNS names resolved by the sidecar's Envoy (getaddrinfo: /etc/hosts applies)
    hosts: list[Hostname] = Field(default_factory=list)
    #: or fixed IP addresses
    addresses: list[IPAddress] = Field(default_factory=list)
    port: Port
    protocol: ExternalProtocol
    #: only with ``https``
    tls: ExternalTls | None = None
    #: the stable local address apps dial; allocated from 127.128.0.0/9 when omitted
    localAddress: LoopbackAddress | None = None
    #: reach it through an egress gateway rather than from every caller's host
    via: EgressVia | None = None

    @field_validator("hosts", "addresses")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        seen: set[str] = set()
        for v in values:
            if v in seen:
                raise ValueError(f"{v!r} is listed twice")
            seen.add(v)
        return values

    @model_validator(mode="after")
    def _shape(self) -> ExternalServiceSpec:
        if bool(self.hosts) == bool(self.addresses):
            raise ValueError(
                "give exactly one of hosts (DNS names, e.g. [api.example.com]) or addresses "
                "(IPs, e.g. [203.0.113.7])"
            )
        if self.tls is not None and self.protocol != "https":
            raise ValueError(
                f"tls is for protocol https (the sidecar originates TLS), not {self.protocol}: "
                "with tls the app speaks TLS itself; remove tls or use https"
            )
        if self.protocol == "https" and self.server_name is None:
            raise ValueError(
                "https needs one name to send as SNI and verify the certificate for: set "
                "tls.sni (required with addresses or several hosts)"
            )
        return self

    @property
    def server_name(self) -> str | None:
        """The SNI and certificate name of an ``https`` service."""
        if self.tls is not None and self.tls.sni is not None:
            return self.tls.sni
        return self.hosts[0] if len(self.hosts) == 1 else None


class ExternalService(Resource):
    kind: Literal["ExternalService"]
    spec: ExternalServiceSpec

    @property
    def is_http(self) -> bool:
        return self.spec.protocol in HTTP_EXTERNAL

    @property
    def gateway(self) -> tuple[str, str] | None:
        """The egress Gateway's (namespace, name), or None: callers reach it directly."""
        via = self.spec.via
        if via is None:
            return None
        return (via.namespace or self.metadata.namespace, via.gateway)

    @property
    def gateway_port(self) -> int | None:
        """The port its egress gateway listens on for it (None without ``via``)."""
        via = self.spec.via
        return None if via is None else (via.port or self.spec.port)
