"""``Gateway``: an ingress listener in front of mesh services, optionally terminating TLS."""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from gossamer.model.base import IPAddress, Name, Port, Resource, Strict

_SNI_NAME = re.compile(
    r"(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _sni_host(value: str) -> str:
    if value == "*":
        raise ValueError(
            "'*' is not an SNI name: leave hosts out for the certificate served to every other name"
        )
    if len(value) > 253 or not _SNI_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a host name a client sends in SNI: use a DNS name such as "
            "'shop.example.com' or a wildcard such as '*.example.com' (no port)"
        )
    return value


def _file(value: str) -> str:
    """A path on the gateway's host: the control plane never opens it, the runner does."""
    if not value.startswith("/"):
        raise ValueError(
            f"{value!r} is not an absolute path: give the file's full path on the gateway's "
            "host, e.g. /etc/gossamer/tls/shop.pem"
        )
    if (
        any(c < " " or c == "\x7f" for c in value)
        or posixpath.normpath(value) != value
        or value.startswith("//")
    ):
        raise ValueError(
            f"{value!r} is not a plain absolute path: write it without '.', '..', repeated "
            "or trailing '/' and control characters"
        )
    return value


#: a file on the gateway's host (absolute, normalised)
HostFile = Annotated[str, AfterValidator(_file)]
#: a name clients send in TLS SNI: ``shop.example.com`` or ``*.example.com``
SniHost = Annotated[str, BeforeValidator(_lower), AfterValidator(_sni_host)]


class GatewayCertificate(Strict):
    """One certificate (PEM chain, leaf first) and its private key (PEM, unencrypted)."""

    #: SNI names this certificate is served for; left out: every name no other one lists
    hosts: list[SniHost] | None = Field(default=None, min_length=1)
    certificate: HostFile
    privateKey: HostFile


class GatewayTls(Strict):
    """``{certificate, privateKey}`` for one certificate, or ``certificates`` for several
    chosen by the SNI name a client sends; ``httpsRedirect`` adds a plaintext listener on
    ``httpPort`` that answers every request with a 301 to the same URL over HTTPS."""

    certificate: HostFile | None = None
    privateKey: HostFile | None = None
    certificates: list[GatewayCertificate] | None = Field(default=None, min_length=1)
    httpsRedirect: bool = False
    httpPort: Port | None = None

    @model_validator(mode="after")
    def _one_form(self) -> GatewayTls:
        single = self.certificate is not None or self.privateKey is not None
        if single and self.certificates is not None:
            raise ValueError(
                "set either certificate and privateKey (one certificate) or certificates "
                "(several, chosen by SNI), not both"
            )
        if not single and self.certificates is None:
            raise ValueError("set certificate and privateKey, or certificates")
        if single and (self.certificate is None or self.privateKey is None):
            missing = "privateKey" if self.privateKey is None else "certificate"
            raise ValueError(f"{missing} is missing: certificate and privateKey go together")
        defaults = [i for i, c in enumerate(self.certificates or []) if c.hosts is None]
        if len(defaults) > 1:
            raise ValueError(
                f"certificates {defaults[0]} and {defaults[1]} both leave out hosts; only one "
                "certificate may be the one served to every other name"
            )
        seen: dict[str, int] = {}
        for i, entry in enumerate(self.certificates or []):
            for host in entry.hosts or []:
                if host in seen:
                    raise ValueError(
                        f"host {host!r} is in certificates {seen[host]} and {i}; a name "
                        "chooses one certificate"
                    )
                seen[host] = i
        if self.httpsRedirect and self.httpPort is None:
            raise ValueError("httpsRedirect needs httpPort: the plaintext port that redirects")
        if self.httpPort is not None and not self.httpsRedirect:
            raise ValueError(
                "httpPort is the plaintext port that redirects to HTTPS: set httpsRedirect: "
                "true or leave httpPort out"
            )
        return self

    def entries(self) -> list[GatewayCertificate]:
        """Every certificate, the single form as one entry without hosts."""
        if self.certificates is not None:
            return list(self.certificates)
        assert self.certificate is not None and self.privateKey is not None
        return [GatewayCertificate(certificate=self.certificate, privateKey=self.privateKey)]


class GatewaySpec(Strict):
    address: IPAddress = "127.0.0.1"
    #: the port clients connect to (TLS when ``tls`` is set)
    port: Port
    #: host names served; ``*`` matches any; ``*.example.com`` matches a suffix
    hosts: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    #: proxies in front of this gateway whose X-Forwarded-For entries are trusted
    trustedHops: int = Field(default=0, ge=0, le=10)
    #: terminate TLS from clients (docs/security.md, "TLS at the gateway")
    tls: GatewayTls | None = None
    #: the zone the gateway runs in: it prefers instances there (docs/traffic.md, "Locality")
    zone: Name | None = None

    @model_validator(mode="after")
    def _ports_differ(self) -> GatewaySpec:
        if self.tls is not None and self.tls.httpPort == self.port:
            raise ValueError(
                f"tls.httpPort and port are both {self.port}: the redirecting plaintext "
                "listener needs a port of its own"
            )
        return self


class Gateway(Resource):
    kind: Literal["Gateway"]
    spec: GatewaySpec
