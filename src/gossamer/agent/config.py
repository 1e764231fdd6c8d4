"""The agent's workloads file: what runs on this host and how to check it.

```yaml
host: vm-12                 # the host's name (a Name); --host overrides
address: 127.0.0.3          # where other hosts reach this host; --address overrides
drainSeconds: 5             # how long Envoy drains its listeners on SIGTERM
workloads:
  - name: catalog-1
    service: catalog
    appPort: 8080
    appAddress: 127.0.0.1   # default
    inboundPort: 15001      # default: a free port, kept stable in the state dir
    labels: {version: v1}
    zone: z1
    healthCheck: {type: http, path: /healthz, interval: 1s, timeout: 1s,
                  healthyThreshold: 1, unhealthyThreshold: 2}
    dependencies:
      - service: reviews
```

``to_manifest`` turns one entry into the ``Workload`` the agent registers.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import Field, model_validator

from gossamer.errors import FieldError, ValidationError, field_errors
from gossamer.model.base import Duration, IPAddress, Labels, Name, Port, Strict, in_range
from gossamer.model.loader import yaml_problem
from gossamer.model.workload import Dependency
from gossamer.types import API_VERSION, DEFAULT_NAMESPACE, Manifest

#: labels the control plane sets on agent-registered workloads; a workloads file may not
RESERVED_LABEL_PREFIX = "gossamer.dev/"


class HealthCheck(Strict):
    """How the agent checks the local app. ``http`` needs a 2xx/3xx answer on ``path``;
    ``grpc`` asks grpc.health.v1 (``grpcService``, default: the whole server); ``tcp`` only
    connects."""

    type: Literal["http", "grpc", "tcp"] = "tcp"
    path: str = "/"
    grpcService: str = ""
    interval: Duration = timedelta(seconds=2)
    timeout: Duration = timedelta(seconds=1)
    #: consecutive passes before an unhealthy app counts as healthy again
    healthyThreshold: Annotated[int, in_range(1, 100)] = 1
    #: consecutive failures before a healthy app counts as unhealthy
    unhealthyThreshold: Annotated[int, in_range(1, 100)] = 2

    @model_validator(mode="after")
    def _check(self) -> HealthCheck:
        if not self.path.startswith("/"):
            raise ValueError(f"path {self.path!r} must start with '/' (e.g. /healthz)")
        if self.timeout <= timedelta(0) or self.interval <= timedelta(0):
            raise ValueError("interval and timeout must be > 0 (e.g. interval: 2s, timeout: 1s)")
        if self.timeout > self.interval:
            raise ValueError("timeout must not be longer than interval")
        return self


class WorkloadConfig(Strict):
    name: Name
    namespace: Name = DEFAULT_NAMESPACE
    service: Name
    #: which port of the service this serves (may be omitted when the service has one)
    port: Name | None = None
    appPort: Port
    appAddress: IPAddress = "127.0.0.1"
    #: the sidecar's inbound port on the host address; default: allocated once, kept stable
    inboundPort: Port | None = None
    labels: Labels = Field(default_factory=dict)
    zone: Name | None = None
    weight: Annotated[int, in_range(1, 128)] = 1
    #: unset: the check of the service's TrafficPolicy, else ``HealthCheck()`` (a TCP
    #: connect); set here, it wins over the policy (``agent/policy_checks.py``)
    healthCheck: HealthCheck | None = None
    dependencies: list[Dependency] = Field(default_factory=list)

    @model_validator(mode="after")
    def _labels(self) -> WorkloadConfig:
        for key in self.labels:
            if key.startswith(RESERVED_LABEL_PREFIX):
                raise ValueError(f"label {key!r} is set by the control plane; remove it")
        return self


class AgentConfig(Strict):
    host: Name | None = None
    address: IPAddress | None = None
    drainSeconds: Annotated[int, in_range(0, 600)] = 5
    workloads: list[WorkloadConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> AgentConfig:
        seen: set[tuple[str, str]] = set()
        for i, w in enumerate(self.workloads):
            if (w.namespace, w.name) in seen:
                raise ValueError(f"workloads[{i}]: {w.namespace}/{w.name} is listed twice")
            seen.add((w.namespace, w.name))
        return self


def parse_config(data: Any, source: str = "") -> AgentConfig:
    """Validate a parsed workloads file; ``ValidationError`` names every bad field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError(
            [
                FieldError(
                    "the workloads file must be a mapping with host, address, workloads",
                    source=source,
                )
            ]
        )
    try:
        return AgentConfig.model_validate(data)
    except pydantic.ValidationError as e:
        raise ValidationError(field_errors(e, source=source)) from None


def load_config(path: Path) -> AgentConfig:
    """Read and validate a workloads file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValidationError(
            [
                FieldError(
                    f"cannot read the workloads file: {e.strerror}; check -f", source=str(path)
                )
            ]
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValidationError([FieldError(yaml_problem(e), source=path.name)]) from None
    return parse_config(data, path.name)


def to_manifest(
    w: WorkloadConfig,
    *,
    host: str,
    address: str,
    inbound_port: int,
    health: str = "healthy",
) -> Manifest:
    """The Workload resource the agent registers for ``w``."""
    port: dict[str, Any] = {"port": inbound_port, "appPort": w.appPort}
    if w.port is not None:
        port["name"] = w.port
    spec: dict[str, Any] = {
        "service": w.service,
        "address": address,
        "appAddress": w.appAddress,
        "ports": [port],
        "host": host,
        "health": health,
        "weight": w.weight,
    }
    if w.zone is not None:
        spec["zone"] = w.zone
    if w.dependencies:
        spec["dependencies"] = [
            d.model_dump(mode="json", exclude_none=True) for d in w.dependencies
        ]
    metadata: dict[str, Any] = {"name": w.name, "namespace": w.namespace}
    if w.labels:
        metadata["labels"] = dict(w.labels)
    return {"apiVersion": API_VERSION, "kind": "Workload", "metadata": metadata, "spec": spec}
