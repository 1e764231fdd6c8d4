"""The bootstrap of one workload's sidecar (identity, ADS to the control plane, admin)."""

from __future__ import annotations

from pathlib import Path

from envoy.config.bootstrap.v3 import bootstrap_pb2

from gossamer.agent.config import WorkloadConfig
from gossamer.errors import ConfigError
from gossamer.node import ADMIN_KEY
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import ProxyIdentity

ADMIN_ADDRESS = "127.0.0.1"


def sidecar_bootstrap(
    w: WorkloadConfig,
    *,
    host: str,
    xds: tuple[str, int],
    admin_port: int,
    sds_socket: Path | None = None,
    xds_tls: bool = False,
) -> bootstrap_pb2.Bootstrap:
    """``sds_socket``: the agent's SDS server (stable across agent restarts: the bootstrap's
    digest decides whether a restarted agent adopts the running Envoy); ``xds_tls``: ``xds``
    is the control plane's mTLS port, reached with the workload's certificate."""
    node = ProxyIdentity("sidecar", w.namespace, w.name, service=w.service, host=host, zone=w.zone)
    admin = (ADMIN_ADDRESS, admin_port)
    return ads_bootstrap(
        node,
        xds,
        admin,
        metadata={ADMIN_KEY: f"{admin[0]}:{admin[1]}"},
        sds_socket=sds_socket,
        xds_tls=xds_tls,
    )


def parse_host_port(text: str, option: str) -> tuple[str, int]:

    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"{option}: {text!r} is not HOST:PORT (e.g. 127.0.0.1:18000)")
    return host.strip("[]"), int(port)
