"""What one gateway runner needs to know, checked up front, and the bootstrap it writes."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.resource_monitors.downstream_connections.v3 import (
    downstream_connections_pb2,
)
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from gossamer.errors import FieldError, ValidationError, field_errors
from gossamer.gateway.certificates import POLL_SECONDS
from gossamer.model.base import Name
from gossamer.node import ADMIN_KEY, SDS_KEY
from gossamer.polling import Backoff
from gossamer.ports import Address
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import DEFAULT_NAMESPACE, ProxyIdentity

_NAME: TypeAdapter[str] = TypeAdapter(Name)
CONNECTION_LIMIT_MONITOR = "envoy.resource_monitors.global_downstream_max_connections"


@dataclass(frozen=True)
class GatewaySettings:
    """One gateway: which ``Gateway`` resource it serves and where its parts live.

    ``admin_addr`` must be on loopback (Envoy's admin API is unauthenticated); port 0 picks
    a free port at start. ``workdir`` holds the bootstrap and Envoy's log.
    """

    name: str
    #: the control plane's replicas (one, or several: Envoy moves to the next when its
    #: stream breaks)
    xds_addrs: tuple[Address, ...]
    workdir: Path
    namespace: str = DEFAULT_NAMESPACE
    admin_addr: tuple[str, int] = ("127.0.0.1", 0)
    delta: bool = False
    #: how long SIGTERM lets open connections finish (Envoy's --drain-time-s)
    drain_seconds: float = 5.0
    concurrency: int = 2
    #: open client connections at most (Envoy's overload manager refuses more)
    max_connections: int = 50_000
    log_level: str = "info"
    #: the envoy binary; default: the one installed with Gossamer, else PATH
    envoy: str | None = None
    #: the wait before restarting an Envoy that died or failed to start
    restart: Backoff = field(default_factory=lambda: Backoff(initial=0.5, maximum=30.0))
    #: how often the certificate files of ``Gateway.spec.tls`` are read again (seconds)
    certificate_poll: float = POLL_SECONDS
    #: ``xds_addrs`` are the control plane's mTLS xDS ports (``--xds-tls-addr``), reached with
    #: the gateway's own certificate (a gateway holding a credential)
    xds_tls: bool = False

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        for label, value in (("name", self.name), ("namespace", self.namespace)):
            try:
                _NAME.validate_python(value)
            except PydanticValidationError as e:
                errors.extend(field_errors(e, root=(label,)))
        host, port = self.admin_addr
        if not _is_loopback(host):
            errors.append(
                FieldError(
                    f"{host!r} is not a loopback address; Envoy's admin API is unauthenticated, "
                    "use 127.0.0.1 (or another 127.x.y.z)",
                    "admin_addr",
                )
            )
        if not 0 <= port <= 65535:
            errors.append(FieldError(f"port must be 0..65535, got {port}", "admin_addr"))
        if not self.xds_addrs:
            errors.append(FieldError("name at least one HOST:PORT", "xds_addrs"))
        for i, (host, port) in enumerate(self.xds_addrs):
            if not 1 <= port <= 65535 or not host:
                errors.append(
                    FieldError(
                        f"{host}:{port} is not HOST:PORT with a port 1..65535", f"xds_addrs[{i}]"
                    )
                )
        if not 0 <= self.drain_seconds <= 600:
            errors.append(FieldError("must be 0..600 seconds", "drain_seconds"))
        if not 1 <= self.concurrency <= 256:
            errors.append(FieldError("must be 1..256 worker threads", "concurrency"))
        if not 1 <= self.max_connections <= 10_000_000:
            errors.append(FieldError("must be 1..10000000", "max_connections"))
        if not 0.05 <= self.certificate_poll <= 300:
            errors.append(FieldError("must be 0.05..300 seconds", "certificate_poll"))
        if errors:
            raise ValidationError(errors)

    @property
    def identity(self) -> ProxyIdentity:
        return ProxyIdentity("gateway", self.namespace, self.name)


def gateway_bootstrap(
    settings: GatewaySettings,
    admin_addr: tuple[str, int],
    sds_socket: Path | None = None,
    *,
    mesh_identity: bool = False,
) -> bootstrap_pb2.Bootstrap:
    """The ADS bootstrap of the gateway: node ``gateway~ns~name``, admin on ``admin_addr``
    (announced in the node metadata for ``gossamer proxy-config``), the ``gossamer-sds``
    cluster to the runner's SDS socket (the certificates of ``Gateway.spec.tls``), and a
    limit on open client connections so a flood cannot exhaust the host's file
    descriptors.

    ``mesh_identity``: the runner also serves the gateway's ``identity`` and
    ``trust-bundle`` (it holds a credential), so the node claims the ``gossamer.sds``
    capability (the control plane then gives its clusters mTLS to marked endpoints, like a
    sidecar caller's), and with ``settings.xds_tls`` ADS itself is mTLS with that identity.
    """
    bootstrap = ads_bootstrap(
        settings.identity,
        settings.xds_addrs,
        admin_addr,
        delta=settings.delta,
        metadata={ADMIN_KEY: f"{admin_addr[0]}:{admin_addr[1]}"},
        sds_socket=sds_socket,
        xds_tls=mesh_identity and settings.xds_tls,
    )
    if not mesh_identity:
        # Only the certificates of Gateway.spec.tls are served, no mesh identity: without
        # SDS_KEY the control plane sends this Envoy no mTLS clusters, which would wait for
        # an ``identity`` secret nobody serves.
        bootstrap.node.metadata.fields.pop(SDS_KEY, None)
    limit = downstream_connections_pb2.DownstreamConnectionsConfig(
        max_active_downstream_connections=settings.max_connections
    )
    monitor = bootstrap.overload_manager.resource_monitors.add(name=CONNECTION_LIMIT_MONITOR)
    monitor.typed_config.Pack(limit, deterministic=True)
    return bootstrap


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
