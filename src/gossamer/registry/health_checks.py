"""The health check a TrafficPolicy sets for an agent's workloads (docs/agent-protocol.md,
``healthChecks``).

A service with sidecars is checked by the agents of its hosts, not by its callers' Envoys:
each agent checks its local app and EDS carries the verdict. So ``TrafficPolicy.healthCheck``
reaches those agents in the answers to their registration and heartbeats, per workload,
from the policy its inbound side uses: that of the most specific subset the workload is in
(most labels), else the service's (``translate.inbound_limit.inbound_policy``, the same
precedence as the subset clusters: a subset's policy replaces the service's as a whole).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gossamer.model.snapshot import ModelSnapshot
from gossamer.model.workload import Workload
from gossamer.translate.inbound_limit import inbound_policy
from gossamer.types import ResourceKey


def policy_health_checks(
    snap: ModelSnapshot, owned: Mapping[ResourceKey, Workload]
) -> dict[str, dict[str, Any]]:
    """``NS/NAME`` of each workload in ``owned`` whose TrafficPolicy sets a healthCheck ->
    that check as the manifest writes it (defaults filled in, durations as text), with
    ``trafficPolicy``: the ``NS/NAME`` of the policy it comes from. Workloads left out
    have no check from a policy."""
    out: dict[str, dict[str, Any]] = {}
    for key, w in sorted(owned.items()):
        policy = inbound_policy(snap, w)
        if policy is None or policy.spec.healthCheck is None:
            continue
        check = policy.spec.healthCheck.model_dump(mode="json", exclude_none=True)
        check["trafficPolicy"] = "/".join(policy.ref)
        out[f"{key.namespace}/{key.name}"] = check
    return out
