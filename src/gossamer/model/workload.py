"""``Workload``: one running instance of a service, where it listens and what it calls."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from gossamer.model.base import (
    IPAddress,
    LoopbackAddress,
    Name,
    Port,
    Resource,
    Strict,
    in_range,
)

Health = Literal["healthy", "unhealthy", "draining"]


class WorkloadPort(Strict):
    #: the service port this serves; may be omitted when the service has one port
    name: Name | None = None
    #: where the mesh reaches this instance: the sidecar's inbound port, or the app's own port
    #: when the workload runs without a sidecar
    port: Port
    #: the port the app listens on locally (required with a sidecar)
    appPort: Port | None = None


class Dependency(Strict):
    service: Name
    #: defaults to the workload's own namespace
    namespace: Name | None = None
    #: which port of the service; may be omitted when the service has one port
    port: Name | None = None
    #: override the stable local address/port the sidecar listens on for this dependency
    localAddress: LoopbackAddress | None = None
    localPort: Port | None = None


class WorkloadSpec(Strict):
    service: Name
    #: the address other hosts reach this workload at
    address: IPAddress
    ports: list[WorkloadPort] = Field(min_length=1)
    #: where the local app listens, as seen from its sidecar
    appAddress: IPAddress = "127.0.0.1"
    #: false for a plain process the mesh reaches directly (e.g. behind an ingress only)
    sidecar: bool = True
    host: Name | None = None
    #: the zone it runs in: callers in the same zone prefer it (docs/traffic.md, "Locality")
    zone: Name | None = None
    health: Health = "healthy"
    weight: Annotated[int, in_range(1, 128)] = 1
    dependencies: list[Dependency] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sidecar_ports(self) -> WorkloadSpec:
        for i, p in enumerate(self.ports):
            if self.sidecar and p.appPort is None:
                raise ValueError(f"ports[{i}].appPort is required when sidecar is true")
            if self.sidecar and p.appPort == p.port and self.appAddress == self.address:
                raise ValueError(
                    f"ports[{i}]: the sidecar and the app cannot both listen on "
                    f"{self.address}:{p.port}; give appPort another port"
                )
        if not self.sidecar and self.dependencies:
            raise ValueError("dependencies need a sidecar: set sidecar: true or remove them")
        return self

    @model_validator(mode="after")
    def _distinct_ports(self) -> WorkloadSpec:
        listening: dict[tuple[str, int], str] = {}
        for i, p in enumerate(self.ports):
            claims = [((self.address, p.port), f"ports[{i}].port")]
            if self.sidecar and p.appPort is not None:
                claims.append(((self.appAddress, p.appPort), f"ports[{i}].appPort"))
            for where, what in claims:
                if where in listening:
                    raise ValueError(
                        f"{what} and {listening[where]} both listen on {where[0]}:{where[1]}; "
                        "give each its own port"
                    )
                listening[where] = what
        return self


class Workload(Resource):
    kind: Literal["Workload"]
    spec: WorkloadSpec

    @property
    def version(self) -> str | None:
        return self.metadata.labels.get("version")

    @property
    def zone(self) -> str | None:
        return self.spec.zone or self.metadata.labels.get("zone")
