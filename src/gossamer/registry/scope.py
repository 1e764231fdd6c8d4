"""What a host may register: the scope its join token gave its agent (docs/agent.md).
A gateway's host (``HostScope.gateway``) registers nothing.

A hostile host holding any credential could otherwise register a Workload of any service,
say without a sidecar and with weight 100, and take that service's traffic. The check is a
plain function of the Workloads and the agent's record, so it is tested without a plane.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pydantic

from gossamer.errors import FieldError, PermissionDeniedError, ValidationError, field_errors
from gossamer.model.internal import AgentSpec, HostScope, in_networks
from gossamer.model.workload import Workload
from gossamer.types import ProxyIdentity


def out_of_scope(workloads: Sequence[Workload], agent: AgentSpec) -> list[str]:
    """One line for each Workload outside what ``agent`` may serve: its service and
    namespace against its scope, its address against its fixed addresses (none fixed yet:
    any). An agent that joined before tokens had a scope may register anything."""
    scope = agent.scope
    if scope is None:
        return []
    problems = []
    for w in workloads:
        ns, service, address = w.metadata.namespace, w.spec.service, w.spec.address
        if scope.gateway is not None:
            problems.append(
                f"Workload {ns}/{w.metadata.name}: host {agent.host}'s join token is for "
                f"gateway {scope.gateway}, and a gateway's host registers no Workloads"
            )
        elif not scope.allows(ns, service):
            problems.append(
                f"Workload {ns}/{w.metadata.name}: service {ns}/{service} is outside what "
                f"host {agent.host}'s join token allows ({scope.describe()})"
            )
        elif agent.addresses and not in_networks(address, agent.addresses):
            problems.append(
                f"Workload {ns}/{w.metadata.name}: address {address} is not host "
                f"{agent.host}'s ({', '.join(agent.addresses)})"
            )
    return problems


def check_scope(workloads: Sequence[Workload], agent: AgentSpec) -> None:
    """Raise ``PermissionDeniedError`` (403) naming every Workload outside ``agent``'s scope
    and what its token allows; a changed address needs the operator."""
    problems = out_of_scope(workloads, agent)
    if problems:
        raise PermissionDeniedError(
            "; ".join(problems)
            + ". Nothing was registered: a host registers only what its join token allows; "
            "for another service or address the operator revokes the agent "
            "(`gossamer agents revoke HOST`) and gives the host a new token "
            "(`gossamer token create --service NAME [--address ADDR]`)"
        )


def fixed_addresses(workloads: Sequence[Workload], agent: AgentSpec) -> list[str]:
    """The addresses ``agent``'s host has after registering ``workloads``: those already
    fixed (the token's pin or an earlier registration), else those these Workloads use (a
    first registration fixes them; an empty one fixes nothing)."""
    if agent.addresses or agent.scope is None or agent.scope.gateway is not None:
        return list(agent.addresses)
    return sorted({w.spec.address for w in workloads})


def parse_scope(data: Mapping[str, object]) -> HostScope:
    """A join token's scope from its request body's ``scope``; ``ValidationError`` naming
    the field (``scope.services``, ...) and what would be valid."""
    try:
        return HostScope.model_validate(dict(data))
    except pydantic.ValidationError as e:
        raise ValidationError(field_errors(e, root=("scope",))) from None


def gateway_secrets(
    gateway: str, secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, str]]:
    """A gateway host's SDS report (its gateway ``ns/name`` -> secret -> version) by node id
    (``gateway~ns~name``); ``ValidationError`` naming any other key, and nothing changes."""
    errors = [
        FieldError(
            f"this host runs gateway {gateway} only: report its secrets under {gateway!r}",
            f"secrets.{name}",
        )
        for name in secrets
        if name != gateway
    ]
    if errors:
        raise ValidationError(errors)
    namespace, _, name = gateway.partition("/")
    node = ProxyIdentity("gateway", namespace, name).node_id
    held = secrets.get(gateway)
    return {} if held is None else {node: dict(held)}
