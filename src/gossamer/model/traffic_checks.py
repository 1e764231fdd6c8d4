"""Cross-resource checks of TrafficPolicies: the service exists, one policy per
(service, subset), and each setting can take effect where it would be enforced.

``healthCheck`` takes effect anywhere: towards workloads without sidecars the callers'
Envoys check actively; a workload with a sidecar is checked by its agent, which gets the
check from the control plane (``registry.health_checks``)."""

from __future__ import annotations

from gossamer.errors import FieldError
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.model.traffic_policy import TrafficPolicy
from gossamer.model.workload import Workload


def _subset_text(p: TrafficPolicy) -> str:
    if not p.spec.subset:
        return ""
    return " subset {" + ", ".join(f"{k}: {v}" for k, v in p.subset_key) + "}"


def sidecar_callers(snap: ModelSnapshot, service: Ref) -> list[Workload]:
    """Workloads whose sidecar calls ``service``: they depend on it, or on a service whose
    east-west Routes send to it."""
    out = []
    for w in snap.workloads.values():
        for dep in w.spec.dependencies:
            ref = (dep.namespace or w.metadata.namespace, dep.service)
            targets = {ref} | {
                (d.namespace or r.metadata.namespace, d.service)
                for r in snap.routes_for_service(ref)
                for rule in r.spec.rules
                for d in rule.targets()
            }
            if service in targets:
                out.append(w)
                break
    return out


def _check(snap: ModelSnapshot, p: TrafficPolicy, out: list[FieldError]) -> None:
    where = str(p.key)
    service = (p.metadata.namespace, p.spec.service)
    if service not in snap.services and service not in snap.external_services:
        out.append(
            FieldError(
                f"Service {service[0]}/{service[1]} does not exist: apply it first (or in the "
                "same input)",
                "spec.service",
                where,
            )
        )
        return
    first = snap.traffic_policy(service, p.subset_key)
    if first is not None and first.key != p.key and first.subset_key == p.subset_key:
        out.append(
            FieldError(
                f"{first.key} already applies to {service[0]}/{service[1]}{_subset_text(p)}: "
                "one TrafficPolicy per service (and subset); merge the two",
                "spec.subset" if p.spec.subset else "spec.service",
                where,
            )
        )
    hashing = p.spec.loadBalancer.hash
    if hashing is not None and hashing.sourceIP:
        callers = sidecar_callers(snap, service)
        if callers:
            out.append(
                FieldError(
                    f"hashing by source IP works only at gateways, but {callers[0].key} calls "
                    f"{service[1]} through its sidecar (where every request comes from the "
                    "app's own address): hash by header or cookie",
                    "spec.loadBalancer.hash.sourceIP",
                    where,
                )
            )
    workloads = snap.workloads_of(service)
    without = [w for w in workloads if not w.spec.sidecar]
    if p.spec.rateLimit is not None and without:
        out.append(
            FieldError(
                f"the rate limit is enforced by the service's sidecars, but {without[0].key} "
                "runs without one: limit at the callers with a Route's rateLimit instead",
                "spec.rateLimit",
                where,
            )
        )


def check_traffic_policies(snap: ModelSnapshot, out: list[FieldError]) -> None:
    """Append what is inconsistent about every TrafficPolicy in ``snap`` to ``out``."""
    for p in snap.resources.values():
        if isinstance(p, TrafficPolicy):
            _check(snap, p, out)
