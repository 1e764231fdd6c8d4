"""What the agent is doing, as ``gossamer agent status`` shows it (the agent writes it to
``status.json`` in its state dir on every change)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class EnvoyStatus:
    state: str = "starting"  # starting | running | adopted | restarting | failed | stopped
    pid: int | None = None
    admin: str | None = None
    restarts: int = 0
    error: str | None = None
    retry_in: float | None = None


@dataclass
class IdentityStatus:
    """One service's certificate on this host (``agent/identity/rotation.py``)."""

    #: waiting (for the first certificate) | issued | failing | expired | no-ca
    state: str = "waiting"
    spiffe_id: str | None = None
    #: the serial (hex) of the certificate served now, and when it expires (RFC 3339)
    serial: str | None = None
    not_after: str | None = None
    #: when the agent renews it
    renew_at: str | None = None
    error: str | None = None
    retry_in: float | None = None


@dataclass
class WorkloadStatus:
    service: str
    inbound: str
    health: str | None = None
    health_error: str | None = None
    #: the check the agent runs: ``source`` (file | policy | default), ``trafficPolicy``
    #: (``NS/NAME``, with source policy) and the check's fields (``agent/policy_checks.py``)
    health_check: dict[str, Any] | None = None
    envoy: EnvoyStatus = field(default_factory=EnvoyStatus)
    #: what this Envoy ACKed over SDS: {"acked": {secret: version}, "error", "streams"}
    #: (``identity`` is versioned by the certificate's serial, ``trust-bundle`` by a digest)
    sds: dict[str, Any] | None = None


@dataclass
class AgentStatus:
    pid: int
    agent_id: str
    host: str
    server: str
    state: str = "starting"  # starting | running | draining | stopped | detached | failed
    #: the last failure talking to the control plane (None: the last call worked)
    control_plane_error: str | None = None
    control_plane_retry_in: float | None = None
    #: the ``reason`` of the control plane's last 401 while it still refuses this agent
    #: (``unknown_agent``: its Envoys keep serving; ``revoked``: the agent stopped)
    control_plane_refused: str | None = None
    registered: bool = False
    error: str | None = None
    workloads: dict[str, WorkloadStatus] = field(default_factory=dict)
    #: per service (``NS/NAME``): its certificate
    identities: dict[str, IdentityStatus] = field(default_factory=dict)
    #: the SDS server's Unix socket
    sds_socket: str | None = None
    #: denials reported to the control plane: queued, sent, dropped, refused, error
    denials: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["updated"] = time.time()
        return out
