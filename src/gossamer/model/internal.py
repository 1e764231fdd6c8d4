"""The control plane's internal kinds, ``JoinToken``, ``Agent`` and ``OperatorToken`` (see
gossamer.registry), ``FetchedJwks`` (``controlplane.jwks_refresh``) and ``AddressSeed``
(``controlplane.address_seed``): stored and revisioned like any resource, never applied by
users.

``JoinToken`` and ``Agent`` carry the owner label (``gossamer.dev/agent``) of the agent they
are about. A join token names its future agent when it is created, so that joining (token
used + agent created) and revoking (agent revoked + its Workloads deleted) are each one
``ControlPlane.apply`` by that one owner.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field, model_validator

from gossamer.model.authentication import MAX_JWKS_CHARS, jwks_error
from gossamer.model.base import Name, Resource, Strict, _name
from gossamer.types import DEFAULT_NAMESPACE, SYSTEM_NAMESPACE, ResourceKey

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


def _gateway_ref(value: str) -> str:
    """``NS/NAME`` (or ``NAME``: namespace ``default``) of a gateway, as ``ns/name``."""
    namespace, sep, name = value.rpartition("/")
    parts = (namespace, name) if sep else (DEFAULT_NAMESPACE, name)
    try:
        for part in parts:
            _name(part)
    except ValueError:
        raise ValueError(
            f"{value!r} is not NS/NAME (or NAME, in namespace default) of a Gateway: names "
            "are 1-63 lowercase letters, digits and '-', e.g. 'default/edge' or 'edge'"
        ) from None
    return "/".join(parts)


#: a gateway's ``namespace/name`` (``name`` alone is in namespace ``default``)
GatewayRef = Annotated[str, AfterValidator(_gateway_ref)]


class HostScope(Strict):
    """What a host may serve: set by the operator on its join token, then its agent's.

    Services are named in one namespace (``default`` unless told) or in any
    (``anyNamespace``); "any service" must be said (``anyService``), never implied by an
    empty list. ``addresses`` pins where the host's Workloads may say they are reached
    (addresses or CIDRs); empty: the host's first registration fixes them.

    Or the host runs a gateway (``gateway: ns/name``): it registers no Workloads, gets
    certificates only for that gateway's identity and subscribes to xDS only as that
    gateway; such a scope names nothing else.
    """

    services: list[Name] = Field(default_factory=list)
    anyService: bool = False
    #: the one namespace its services are in (``default`` when neither this nor anyNamespace)
    namespace: Name | None = None
    anyNamespace: bool = False
    addresses: list[Network] = Field(default_factory=list)
    #: the Gateway (``ns/name``) whose Envoy the host runs, instead of services
    gateway: GatewayRef | None = None

    @model_validator(mode="after")
    def _said(self) -> HostScope:
        if self.gateway is not None:
            given = [
                f
                for f, v in (
                    ("services (--service)", self.services),
                    ("anyService (--any-service)", self.anyService),
                    ("namespace (--namespace)", self.namespace is not None),
                    ("anyNamespace (--any-namespace)", self.anyNamespace),
                    ("addresses (--address)", self.addresses),
                )
                if v
            ]
            if given:
                raise ValueError(
                    f"a gateway's token (gateway: {self.gateway}, --gateway) names nothing "
                    f"else: drop {', '.join(given)}; write the gateway's namespace as "
                    "--gateway NS/NAME"
                )
            return self
        if self.anyService and self.services:
            raise ValueError(
                "give services (--service NAME) or anyService (--any-service), not both"
            )
        if not self.anyService and not self.services:
            raise ValueError(
                "a join token says what its host may serve: give services (--service NAME, "
                "repeatable) or, for a host that may serve any service, anyService: true "
                "(--any-service), or, for a gateway's host, gateway: NS/NAME "
                "(--gateway NS/NAME)"
            )
        if self.anyNamespace and self.namespace is not None:
            raise ValueError(
                "give namespace (--namespace NS) or anyNamespace (--any-namespace), not both"
            )
        return self

    def allows(self, namespace: str, service: str) -> bool:
        """Whether the host may serve ``namespace/service`` (a gateway's host: none)."""
        if self.gateway is not None:
            return False
        in_namespace = self.anyNamespace or namespace == (self.namespace or DEFAULT_NAMESPACE)
        return in_namespace and (self.anyService or service in self.services)

    def describe(self) -> str:
        """One line: what it allows (for errors and listings)."""
        if self.gateway is not None:
            return f"gateway {self.gateway}"
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
    #: a namespaced token's namespaces and API rights (read, apply, delete); its powers
    #: are in the NGAC graph, these say what it was created with
    namespaces: list[Name] = Field(default_factory=list)
    rights: list[str] = Field(default_factory=list)


class OperatorToken(Resource):
    kind: Literal["OperatorToken"]
    spec: OperatorTokenSpec


def _jwks(value: str) -> str:
    why = jwks_error(value)
    if why is not None:
        raise ValueError(why)
    return value


class FetchedJwksSpec(Strict):
    """The keys the control plane last fetched from a Mesh issuer's ``jwks.uri``: what
    proxies verify that issuer's tokens with while the Mesh names the same ``uri``
    (``translate.jwt``). Written only when the keys change, so a restarted control plane
    serves them at once, whether or not the identity provider answers."""

    issuer: str
    uri: str
    jwks: Annotated[str, Field(min_length=1, max_length=MAX_JWKS_CHARS), AfterValidator(_jwks)]
    #: when these keys were first fetched
    fetchedAt: AwareDatetime


class FetchedJwks(Resource):
    kind: Literal["FetchedJwks"]
    spec: FetchedJwksSpec


def fetched_jwks_key(issuer: str) -> ResourceKey:
    """Where the keys fetched for ``issuer`` are kept (one record per issuer)."""
    digest = hashlib.sha256(issuer.encode()).hexdigest()[:24]
    return ResourceKey("FetchedJwks", SYSTEM_NAMESPACE, f"jwks-{digest}")


_SEED = re.compile(r"^(?:[0-9a-f]{32})?$")


def _seed(value: str) -> str:
    if not _SEED.fullmatch(value):
        raise ValueError(
            "must be 32 lowercase hex digits, or empty for a store created before seeds"
        )
    return value


class AddressSeedSpec(Strict):
    """What this mesh's stable local addresses are hashed with, besides ``namespace/name``
    (``ModelSnapshot.local_addresses``): random, so that two meshes on one machine do not
    allocate the same addresses. Empty: the store was created before seeds, and keeps the
    addresses its apps dial."""

    seed: Annotated[str, AfterValidator(_seed)]


class AddressSeed(Resource):
    kind: Literal["AddressSeed"]
    spec: AddressSeedSpec


#: the one ``AddressSeed`` record of a store
ADDRESS_SEED_KEY = ResourceKey("AddressSeed", SYSTEM_NAMESPACE, "local-addresses")
