"""``AgentReports``: what a joined agent reports about its host's Workloads, and is told back.

An agent that has authenticated sends its host's whole set of Workloads, their health and
what each Envoy ACKed over SDS; it is answered with each Workload's dependencies' addresses,
the health checks policies ask for, and which identities its host may get certificates for.
All of that is about the Workloads an agent owns (``gossamer.registry.workloads``) within its
token's scope, not about who the agent is: ``Registry`` (``gossamer.registry.registry``)
authenticates the agent, holds its per-agent lock and hands these calls here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.service import ApplyResult
from gossamer.model.base import Resource
from gossamer.model.snapshot import ModelSnapshot
from gossamer.registry.env import WorkloadEnv, workload_env
from gossamer.registry.health_checks import policy_health_checks
from gossamer.registry.record_manifests import Agent
from gossamer.registry.records import without_internal
from gossamer.registry.scope import check_scope, fixed_addresses, gateway_secrets
from gossamer.registry.sds_acks import SdsAcks
from gossamer.registry.workloads import (
    holding_secrets,
    owned_workloads,
    prepare_workloads,
    with_health,
)
from gossamer.translate.names import IDENTITY_SECRET, TRUST_BUNDLE_SECRET


class AgentReports:
    """The Workloads of the agents of one ``ControlPlane``.

    ``model`` is the loaded model (it raises while the plane loads), ``active`` the agent of
    an id if it is active (``AuthError`` otherwise) and ``lock`` the agent's lock, which
    serialises read-modify-write of its records.
    """

    def __init__(
        self,
        plane: ControlPlane,
        *,
        model: Callable[[], ModelSnapshot],
        active: Callable[[str], Agent],
        lock: Callable[[str], asyncio.Lock],
        sds_acks: SdsAcks,
    ) -> None:
        self.plane = plane
        self._model = model
        self._active = active
        self._lock = lock
        self.sds_acks = sds_acks

    async def set_workloads(
        self,
        agent_id: str,
        manifests: Sequence[object],
        *,
        wait: bool = False,
        wait_timeout: float = 30.0,
    ) -> ApplyResult:
        """Make ``manifests`` the agent's whole set of Workloads, in one transaction.

        Each must be a Workload for the agent's host, within its scope (service, namespace,
        address: ``PermissionDeniedError``); Workloads it registered before and does not
        list now are deleted. The first registration of a host whose token pinned no
        address fixes its addresses, in the same transaction. ``ValidationError``,
        ``PermissionDeniedError`` and ``ConflictError`` change nothing.
        """
        async with self._lock(agent_id):
            agent = self._active(agent_id)
            workloads = prepare_workloads(manifests, agent_id, agent.spec.host)
            check_scope(workloads, agent.spec)
            listed = {w.key for w in workloads}
            gone = [k for k in owned_workloads(self._model(), agent_id) if k not in listed]
            puts: list[Resource] = list(workloads)
            addresses = fixed_addresses(workloads, agent.spec)
            if addresses != agent.spec.addresses:
                spec = agent.spec.model_copy(update={"addresses": addresses})
                puts.append(
                    Agent.model_validate(agent.model_copy(update={"spec": spec}).to_manifest())
                )
            result = await self.plane.apply(
                puts,
                deletes=gone,
                owner=agent_id,
                internal=True,
                wait=wait,
                wait_timeout=wait_timeout,
            )
        return without_internal(result)

    async def set_health(
        self,
        agent_id: str,
        health: Mapping[str, str],
        *,
        wait: bool = False,
        wait_timeout: float = 30.0,
    ) -> ApplyResult:
        """Set ``spec.health`` of the agent's Workloads named in ``health``."""
        async with self._lock(agent_id):
            self._active(agent_id)
            updated = with_health(owned_workloads(self._model(), agent_id), health, agent_id)
            result = await self.plane.apply(
                updated,
                owner=agent_id,
                internal=True,
                wait=wait,
                wait_timeout=wait_timeout,
            )
        return without_internal(result)

    def report_secrets(self, agent_id: str, secrets: Mapping[str, Mapping[str, str]]) -> None:
        """The agent's report (with its heartbeat) of what each of its Envoys ACKed over SDS
        (Workload -> secret name -> version): a sidecar holding its ``identity`` and
        ``trust-bundle`` may be marked ready for mTLS. In memory (a restarted control plane
        hears it again within a heartbeat); ``ValidationError`` for a Workload the agent did
        not register, and nothing changes. A gateway's host reports under its gateway's
        ``ns/name`` (``scope.gateway_secrets``)."""
        scope = self._active(agent_id).spec.scope
        needed = (IDENTITY_SECRET, TRUST_BUNDLE_SECRET)
        if scope is not None and scope.gateway is not None:
            nodes = gateway_secrets(scope.gateway, secrets)
            held = frozenset(n for n, h in nodes.items() if all(h.get(x) for x in needed))
            self.plane.mtls.set_secrets_held(agent_id, held)
            self.sds_acks.report(agent_id, nodes)
            return
        owned = owned_workloads(self._model(), agent_id)
        holding = holding_secrets(owned, secrets, agent_id, needed)
        self.plane.mtls.set_secrets_held(agent_id, holding)
        self.sds_acks.report(
            agent_id,
            {
                node: dict(held)
                for name, held in secrets.items()
                for node in holding_secrets(owned, {name: held}, agent_id, ())
            },
        )

    def env(self, agent_id: str) -> list[WorkloadEnv]:
        """Each of the agent's Workloads with its dependencies' stable local addresses."""
        self._active(agent_id)
        snap = self._model()
        return [workload_env(snap, w) for w in owned_workloads(snap, agent_id).values()]

    def health_checks(self, agent_id: str) -> dict[str, dict[str, Any]]:
        """The TrafficPolicy health check of each of the agent's Workloads that has one."""
        snap = self._model()
        return policy_health_checks(snap, owned_workloads(snap, agent_id))

    def serves(self, agent_id: str, namespace: str, service: str) -> bool:
        """Whether ``agent_id`` (active) registered a Workload of ``namespace/service``:
        the only identities its host may get certificates for (a gateway's host: its
        gateway's identity, and nothing else)."""
        scope = self._active(agent_id).spec.scope
        if scope is not None and scope.gateway is not None:
            return scope.gateway == f"{namespace}/{service}"
        return any(
            w.metadata.namespace == namespace and w.spec.service == service
            for w in owned_workloads(self._model(), agent_id).values()
        )
