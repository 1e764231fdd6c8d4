"""Which health check the agent runs for a workload, and where it comes from.

A service with sidecars is checked by the agents of its hosts (the verdict is what EDS
carries), so a ``TrafficPolicy.healthCheck`` of its service reaches the agent: in the
answers to its workloads registration and heartbeats, ``healthChecks`` (docs/agent-protocol.md).
Precedence, per workload:

1. ``file``: the ``healthCheck`` its workloads file sets (the operator on the host knows
   best);
2. ``policy``: the check of its TrafficPolicy (the most specific subset's, else the
   service's), converted to the agent's ``HealthCheck``: ``http.path`` -> an ``http``
   check of that path, no ``http`` -> ``tcp``; interval, timeout and thresholds as they are;
3. ``default``: ``HealthCheck()``, a TCP connect every 2 s.

An answer without ``healthChecks`` (an older control plane) changes nothing; one with it is
the whole truth (a workload it leaves out has no policy check, so it falls back to its
default). A check that does not convert is logged and the workload keeps what it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import pydantic

from gossamer.agent.config import HealthCheck, WorkloadConfig

log = logging.getLogger(__name__)

CheckSource = Literal["file", "policy", "default"]


@dataclass(frozen=True)
class EffectiveCheck:
    """The check a workload runs, where it came from and (``policy``) which TrafficPolicy."""

    check: HealthCheck
    source: CheckSource
    traffic_policy: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As ``gossamer agent status --json`` shows it."""
        out: dict[str, Any] = {"source": self.source}
        if self.traffic_policy is not None:
            out["trafficPolicy"] = self.traffic_policy
        out.update(self.check.model_dump(mode="json"))
        return out

    def same_question(self, other: EffectiveCheck) -> bool:
        """Whether ``other`` probes the same thing (only its timing or thresholds differ)."""
        a, b = self.check, other.check
        return (a.type, a.path, a.grpcService) == (b.type, b.path, b.grpcService)


def policy_check(body: Mapping[str, Any]) -> HealthCheck:
    """A TrafficPolicy's ``healthCheck`` as the control plane sends it, as the agent's check.
    Raises ``ValueError`` (``pydantic.ValidationError``) for one it cannot run."""
    http = body.get("http")
    fields: dict[str, Any] = {"type": "tcp", "interval": "5s", "timeout": "1s"}
    if isinstance(http, Mapping):
        fields.update(type="http", path=http.get("path", "/"))
    for name in ("interval", "timeout", "unhealthyThreshold", "healthyThreshold"):
        if name in body:
            fields[name] = body[name]
    return HealthCheck.model_validate(fields)


def effective_check(config: WorkloadConfig, policy: EffectiveCheck | None) -> EffectiveCheck:
    """The check ``config``'s workload runs, given its policy's (None: no policy check)."""
    if config.healthCheck is not None:
        return EffectiveCheck(config.healthCheck, "file")
    return policy or EffectiveCheck(HealthCheck(), "default")


class Checked(Protocol):
    """A workload whose check can change (``agent.workload.WorkloadRunner``)."""

    @property
    def key(self) -> str: ...

    config: WorkloadConfig
    check: EffectiveCheck

    def use_check(self, check: EffectiveCheck) -> None: ...


def heard_checks(answer: Mapping[str, Any], workloads: Iterable[Checked]) -> None:
    """Apply the ``healthChecks`` of a registration or heartbeat answer to ``workloads``."""
    found = answer.get("healthChecks")
    if not isinstance(found, Mapping):
        return  # an older control plane: it sends no policy checks
    for w in workloads:
        body = found.get(w.key)
        policy = None
        if isinstance(body, Mapping):
            name = body.get("trafficPolicy")
            try:
                policy = EffectiveCheck(
                    policy_check(body), "policy", name if isinstance(name, str) else None
                )
            except (pydantic.ValidationError, ValueError) as e:
                log.warning(
                    "%s: cannot run the health check of TrafficPolicy %s (%s); keeping %s",
                    w.key,
                    name,
                    str(e).replace("\n", " "),
                    w.check.source,
                )
                continue
        w.use_check(effective_check(w.config, policy))
