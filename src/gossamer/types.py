"""The core types a newcomer reads first: how resources and proxies are named.

Everything else in Gossamer speaks in these terms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, NoReturn

from gossamer.errors import FieldError, ValidationError

API_VERSION = "gossamer.dev/v1"
DEFAULT_NAMESPACE = "default"

#: the label naming the agent that registered (and so owns) a resource
OWNER_LABEL = "gossamer.dev/agent"
#: where the control plane keeps its own records (tokens, agents, the NGAC journal); no user
#: applies or deletes anything there
SYSTEM_NAMESPACE = "gossamer-system"

#: A resource as the user wrote it and the store keeps it: apiVersion, kind, metadata, spec.
Manifest = dict[str, Any]


class ResourceKey(NamedTuple):
    """Identifies one stored resource."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


ProxyKind = Literal["sidecar", "gateway"]


@dataclass(frozen=True, slots=True)
class ProxyIdentity:
    """Who an Envoy is, parsed from its xDS node (see docs/conventions.md).

    ``name`` is the Workload name for a sidecar and the Gateway name for a gateway.
    """

    kind: ProxyKind
    namespace: str
    name: str
    service: str | None = None
    host: str | None = None
    zone: str | None = None

    @property
    def node_id(self) -> str:
        return f"{self.kind}~{self.namespace}~{self.name}"

    @property
    def resource_key(self) -> ResourceKey:
        return ResourceKey(
            "Workload" if self.kind == "sidecar" else "Gateway", self.namespace, self.name
        )


# -- workload identity (issue 9) ---------------------------------------------------------

#: a SPIFFE trust domain as the Mesh's ``spec.trustDomain`` allows it
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]{1,255}$")
#: a namespace or service name (the DNS label every resource name is)
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def spiffe_id(trust_domain: str, namespace: str, service: str) -> str:
    """The SPIFFE id of a service's workloads: ``spiffe://<td>/ns/<namespace>/sa/<service>``.

    The one place the id is built, so the CA, the agent and the mTLS translation can never
    disagree on it. A gateway's identity is built the same way from its namespace and name.
    """
    _check(trust_domain, _TRUST_DOMAIN, "trust domain", "lower-case letters, digits, '.', '-', '_'")
    _check(namespace, _LABEL, "namespace", "a DNS label: lower-case letters, digits and '-'")
    _check(service, _LABEL, "service", "a DNS label: lower-case letters, digits and '-'")
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service}"


def parse_spiffe_id(text: str) -> tuple[str, str, str]:
    """``spiffe://<td>/ns/<namespace>/sa/<service>`` -> ``(td, namespace, service)``.

    Refuses (``ValidationError``) anything ``spiffe_id`` would not have built.
    """
    rest = text.removeprefix("spiffe://") if isinstance(text, str) else ""
    parts = rest.split("/")
    if rest == text or len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa":
        _refuse(
            "spiffe id",
            f"{str(text)[:120]!r} is not a workload SPIFFE id: "
            "expected spiffe://<trust domain>/ns/<namespace>/sa/<service>",
        )
    trust_domain, _, namespace, _, service = parts
    spiffe_id(trust_domain, namespace, service)  # validates each part, names the bad one
    return trust_domain, namespace, service


def _check(value: str, pattern: re.Pattern[str], what: str, valid: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        _refuse(what, f"{str(value)[:120]!r} is not a valid {what}: use {valid}")


def _refuse(path: str, message: str) -> NoReturn:
    raise ValidationError([FieldError(message, path)])
