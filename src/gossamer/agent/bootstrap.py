"""The bootstrap of one workload's sidecar (identity, ADS to the control plane, admin)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from envoy.config.bootstrap.v3 import bootstrap_pb2

from gossamer.agent.config import WorkloadConfig
from gossamer.node import ADMIN_KEY
from gossamer.ports import Address
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import ProxyIdentity

ADMIN_ADDRESS = "127.0.0.1"


def sidecar_bootstrap(
    w: WorkloadConfig,
    *,
    host: str,
    xds: Sequence[Address],
    admin_port: int,
    sds_socket: Path | None = None,
    xds_tls: bool = False,
) -> bootstrap_pb2.Bootstrap:
    """``sds_socket``: the agent's SDS server (stable across agent restarts: the bootstrap's
    digest decides whether a restarted agent adopts the running Envoy); ``xds``: the control
    plane's replicas (Envoy moves to the next when its stream breaks); ``xds_tls``: they are
    the control plane's mTLS ports, reached with the workload's certificate."""
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
