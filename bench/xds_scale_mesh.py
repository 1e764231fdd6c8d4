"""The mesh of ``bench/xds_scale.py``: services x 3 workloads, sidecars with Zipf-distributed
dependencies, gateways routing to every service, and the changes the bench makes to it.

Only the services whose workloads have simulated proxies run sidecars (all of a service's
workloads, as the model wants; at most two of them do not connect); the other services'
workloads are ``sidecar: false`` (plain processes the mesh reaches directly).
Dependencies are drawn per sidecar without replacement with probability ~ 1/(rank+1)^s over
the services (``svc-0`` is the most popular), with a fixed seed: the same flags give the
same mesh.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from gossamer.model import parse_manifest
from gossamer.model.base import Resource
from gossamer.types import ProxyIdentity

API = "gossamer.dev/v1"
NAMESPACE = "default"
REPLICAS = 3
#: simulated gateways listen nowhere: their ports only have to differ
SIMULATED_GATEWAY_PORT = 20_000
#: the real Envoy gateways are named <prefix>0, <prefix>1, ...
REAL_GATEWAY_PREFIX = "gw-real-"


def _manifest(kind: str, name: str, spec: dict[str, Any]) -> Resource:
    return parse_manifest(
        {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


@dataclass(frozen=True)
class Mesh:
    services: int
    #: (service, replica) of each simulated sidecar, in proxy order
    sidecars: list[tuple[int, int]]
    #: per workload with a sidecar (simulated or not connected), the services it calls
    deps: dict[tuple[int, int], list[int]]
    #: gateway name -> port (simulated ones first, then the real Envoys')
    gateways: dict[str, int]

    def workload(self, service: int, replica: int, weight: int = 1) -> Resource:
        k = service * REPLICAS + replica
        address = f"127.1.{k // 250 % 250}.{k % 250 + 1}"
        port = 10_000 + k % 25_000
        spec: dict[str, Any] = {"service": f"svc-{service}", "address": address, "weight": weight}
        if (service, replica) in self.deps:
            spec["ports"] = [{"port": port, "appPort": 40_000 + k % 25_000}]
            spec["dependencies"] = [{"service": f"svc-{d}"} for d in self.deps[service, replica]]
        else:
            spec["ports"] = [{"port": port}]
            spec["sidecar"] = False
        return _manifest("Workload", f"svc-{service}-{replica}", spec)

    def route(self, service: int, timeout_s: int | None = None) -> Resource:
        rule: dict[str, Any] = {"destinations": [{"service": f"svc-{service}"}]}
        if timeout_s is not None:
            rule["timeout"] = f"{timeout_s}s"
        return _manifest(
            "Route",
            f"svc-{service}",
            {"gateways": list(self.gateways), "hosts": [f"svc-{service}.bench"], "rules": [rule]},
        )

    def resources(self) -> list[Resource]:
        out = [
            _manifest("Gateway", g, {"address": "127.0.0.1", "port": port})
            for g, port in self.gateways.items()
        ]
        # every Service first: the mesh is applied in chunks, and a workload's dependencies
        # must exist when it is checked
        out.extend(
            _manifest("Service", f"svc-{i}", {"ports": [{"name": "http", "port": 8080}]})
            for i in range(self.services)
        )
        for i in range(self.services):
            out.extend(self.workload(i, j) for j in range(REPLICAS))
            out.append(self.route(i))
        return out

    def resource_count(self) -> int:
        """How many resources ``resources`` makes (without making them)."""
        return len(self.gateways) + self.services * (2 + REPLICAS)

    def proxies(self) -> list[ProxyIdentity]:
        """The simulated proxies: the sidecars, then the simulated gateways."""
        side = [
            ProxyIdentity("sidecar", NAMESPACE, f"svc-{s}-{r}", service=f"svc-{s}")
            for s, r in self.sidecars
        ]
        gws = [
            ProxyIdentity("gateway", NAMESPACE, g)
            for g in self.gateways
            if not g.startswith(REAL_GATEWAY_PREFIX)
        ]
        return side + gws

    def holding(self, service: int) -> int:
        """How many simulated proxies hold ``service``'s endpoints: the simulated sidecars
        calling it and the simulated gateways (every gateway routes to every service)."""
        calling = sum(1 for key in self.sidecars if service in self.deps[key])
        return calling + sum(1 for g in self.gateways if not g.startswith(REAL_GATEWAY_PREFIX))

    def callers(self) -> dict[int, int]:
        """Service -> how many sidecars call it."""
        out: dict[int, int] = {}
        for deps in self.deps.values():
            for d in deps:
                out[d] = out.get(d, 0) + 1
        return out


def zipf_deps(
    rng: random.Random, services: int, own: int, count: int, weights: list[float]
) -> list[int]:
    """``count`` distinct services other than ``own``, drawn by ``weights`` (bounded)."""
    want = min(count, services - 1)
    chosen: dict[int, None] = {}
    for _ in range(100):  # each round draws what is missing; repeats are dropped
        if len(chosen) >= want:
            break
        for d in rng.choices(range(services), weights, k=want - len(chosen)):
            if d != own:
                chosen[d] = None
    if len(chosen) < want:  # a very skewed exponent: fill from the head, deterministically
        for d in range(services):
            if len(chosen) >= want:
                break
            if d != own:
                chosen.setdefault(d, None)
    return list(chosen)[:want]


def mesh_config(tracing: float) -> Resource:
    """The Mesh resource tracing ``tracing`` percent of requests (``--tracing``)."""
    return _manifest("Mesh", "default", {"tracing": {"sampling": tracing}})


def build_mesh(
    services: int,
    sidecars: int,
    gateways: int,
    deps: int,
    real_gateways: dict[str, int],
    *,
    exponent: float = 1.0,
    seed: int = 14,
) -> Mesh:
    """``sidecars`` workloads spread over the services (replica 0 of each first), each
    calling ``deps`` services; ``gateways`` simulated gateways plus the real ones."""
    if sidecars > services * REPLICAS:
        raise ValueError(
            f"--proxies: {sidecars} sidecars need at least {-(-sidecars // REPLICAS)} services"
        )
    rng = random.Random(seed)
    weights = [1 / (rank + 1) ** exponent for rank in range(services)]
    # a service's workloads all run a sidecar or none do (the model refuses a mix): the
    # sidecar services are spread evenly over the popularity ranks
    with_sidecars = -(-sidecars // REPLICAS)
    hosts = [i * services // with_sidecars for i in range(with_sidecars)]
    every = [(s, r) for s in hosts for r in range(REPLICAS)]
    chosen = {(s, r): zipf_deps(rng, services, s, deps, weights) for s, r in every}
    placed = every[:sidecars]
    names = {f"gw-{i}": SIMULATED_GATEWAY_PORT + i for i in range(gateways)}
    return Mesh(services, placed, chosen, {**names, **real_gateways})
