"""Where a workload's app reaches its dependencies: stable local address and port, and the
environment variables an agent prints for them (``gossamer agent env``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gossamer.model.snapshot import ModelSnapshot
from gossamer.model.workload import Workload


@dataclass(frozen=True, slots=True)
class DependencyAddress:
    """One dependency as the app dials it: ``address:port`` on the local sidecar."""

    service: str
    namespace: str
    #: the service port's name
    port_name: str
    protocol: str
    address: str
    port: int
    #: e.g. ``CATALOG_HOST``, ``CATALOG_PORT``, ``CATALOG_ADDR``
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkloadEnv:
    namespace: str
    name: str
    service: str
    dependencies: list[DependencyAddress]

    @property
    def env(self) -> dict[str, str]:
        """Every dependency's variables together."""
        out: dict[str, str] = {}
        for dep in self.dependencies:
            out.update(dep.env)
        return out


def env_prefix(service: str, namespace: str, own_namespace: str, port: str | None) -> str:
    """``CATALOG``; ``CATALOG_SHOP`` from another namespace; ``REVIEWS_GRPC`` for one of
    several ports."""
    parts = [service] + ([namespace] if namespace != own_namespace else [])
    parts += [port] if port else []
    return "_".join(parts).upper().replace("-", "_").replace(".", "_")


def _env(prefix: str, address: str, port: int) -> dict[str, str]:
    return {
        f"{prefix}_HOST": address,
        f"{prefix}_PORT": str(port),
        f"{prefix}_ADDR": f"{address}:{port}",
    }


def workload_env(snap: ModelSnapshot, workload: Workload) -> WorkloadEnv:
    """The dependencies of ``workload`` as its sidecar serves them (see the translator)."""
    own = workload.metadata.namespace
    deps: list[DependencyAddress] = []
    for dep in workload.spec.dependencies:
        ref = (dep.namespace or own, dep.service)
        ext = snap.external_services.get(ref)
        if ext is not None and ref not in snap.services:
            # an ExternalService: one port, named by its protocol
            address = dep.localAddress or snap.local_addresses[ref]
            local_port = dep.localPort or ext.spec.port
            env = _env(env_prefix(ref[1], ref[0], own, None), address, local_port)
            protocol = ext.spec.protocol
            deps.append(
                DependencyAddress(ref[1], ref[0], protocol, protocol, address, local_port, env)
            )
            continue
        svc = snap.services.get(ref)
        port = svc.port(dep.port) if svc else None
        if svc is None or port is None:
            continue  # the store refuses this (check_references); a snapshot mid-change may not
        address = dep.localAddress or snap.local_addresses[ref]
        local_port = dep.localPort or port.port
        prefix = env_prefix(ref[1], ref[0], own, port.name if len(svc.spec.ports) > 1 else None)
        env = _env(prefix, address, local_port)
        deps.append(
            DependencyAddress(ref[1], ref[0], port.name, port.protocol, address, local_port, env)
        )
    return WorkloadEnv(own, workload.metadata.name, workload.spec.service, deps)
