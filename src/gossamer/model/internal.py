"""The control plane's internal kinds, ``JoinToken``, ``Agent`` and ``OperatorToken`` (see
gossamer.registry): stored and revisioned like any resource, never applied by users.

``JoinToken`` and ``Agent`` carry the owner label (``gossamer.dev/agent``) of the agent they
are about. A join token names its future agent when it is created, so that joining (token
used + agent created) and revoking (agent revoked + its Workloads deleted) are each one
``ControlPlane.apply`` by that one owner.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field, model_validator

from gossamer.model.base import Name, Resource, Strict
from gossamer.types import DEFAULT_NAMESPACE

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _sha256(value: str) -> str:
    if not _SHA256.fullmatch(value):
        raise ValueError("must be a SHA-256 digest: 64 lowercase hex digits")
    return value


Sha256 = Annotated[str, AfterValidator(_sha256)]


def _network(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an address or CIDR: write e.g. '127.0.0.5' or '10.0.0.0/24' "
            "(no host bits set after the prefix)"
        ) from None
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


#: an IP address (``127.0.0.5``) or a CIDR (``10.0.0.0/24``), normalised
Network = Annotated[str, AfterValidator(_network)]


def in_networks(address: str, networks: list[str]) -> bool:
    """Whether ``address`` (an IP) lies in one of ``networks`` (addresses or CIDRs)."""
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(n) for n in networks)


class HostScope(Strict):
    """What a host may serve: set by the operator on its join token, then its agent's.

    Services are named in one namespace (``default`` unless told) or in any
    (``anyNamespace``); "any service" must be said (``anyService``), never implied by an
    empty list. ``addresses`` pins where the host's Workloads may say they are reached
    (addresses or CIDRs); empty: the host's first registration fixes them.
    """

    services: list[Name] = Field(default_factory=list)
    anyService: bool = False
    #: the one namespace its services are in (``default`` when neither this nor anyNamespace)
    namespace: Name | None = None
    anyNamespace: bool = False
    addresses: list[Network] = Field(default_factory=list)

    @model_validator(mode="after")
    def _said(self) -> HostScope:
        if self.anyService and self.services:
            raise ValueError(
                "give services (--service NAME) or anyService (--any-service), not both"
            )
        if not self.anyService and not self.services:
            raise ValueError(
                "a join token says what its host may serve: give services (--service NAME, "
                "repeatable) or, for a host that may serve any service, anyService: true "
                "(--any-service)"
            )
        if self.anyNamespace and self.namespace is not None:
            raise ValueError(
                "give namespace (--namespace NS) or anyNamespace (--any-namespace), not both"
            )
        return self

    def allows(self, namespace: str, service: str) -> bool:
        """Whether the host may serve ``namespace/service``."""
        in_namespace = self.anyNamespace or namespace == (self.namespace or DEFAULT_NAMESPACE)
        return in_namespace and (self.anyService or service in self.services)

    def describe(self) -> str:
        """One line: what it allows (for errors and listings)."""
        services = "any service" if self.anyService else "service " + ", ".join(self.services)
        where = (
            "any namespace"
            if self.anyNamespace
            else f"namespace {self.namespace or DEFAULT_NAMESPACE}"
        )
        pinned = f", addresses {', '.join(self.addresses)}" if self.addresses else ""
        return f"{services} in {where}{pinned}"


class JoinTokenSpec(Strict):
    sha256: Sha256
    #: the id the agent that joins with this token gets
    agentId: Name
    expiresAt: AwareDatetime
    usedAt: AwareDatetime | None = None
    #: the host that used it
    usedBy: Name | None = None
    #: what the host that joins with it may serve (None: created before tokens had a
    #: scope; such a token is refused at join)
    scope: HostScope | None = None


class JoinToken(Resource):
    kind: Literal["JoinToken"]
    spec: JoinTokenSpec


class AgentSpec(Strict):
    host: Name
    credentialSha256: Sha256
    joinedAt: AwareDatetime
    #: written at join; later calls are kept in memory (docs/agent-protocol.md, liveness)
    lastSeen: AwareDatetime
    revoked: bool = False
    revokedAt: AwareDatetime | None = None
    #: the join token it joined with
    token: Name
    #: what it may register, from its join token (None: it joined before tokens had a
    #: scope, and may register any service, namespace and address until revoked)
    scope: HostScope | None = None
    #: the addresses and CIDRs its Workloads may be reached at: the token's pin, else
    #: fixed by its first registration (empty until then); changed only by revoking it
    addresses: list[Network] = Field(default_factory=list)


class Agent(Resource):
    kind: Literal["Agent"]
    spec: AgentSpec


class OperatorTokenSpec(Strict):
    """An operator's API token (``gossamer.registry.operators``): only its hash is kept."""

    sha256: Sha256
    #: the NGAC user the token acts as (``admin`` for the first token, else ``token:<name>``)
    user: str
    readOnly: bool = False
    createdAt: AwareDatetime
    revokedAt: AwareDatetime | None = None


class OperatorToken(Resource):
    kind: Literal["OperatorToken"]
    spec: OperatorTokenSpec
