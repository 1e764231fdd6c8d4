"""Listeners: an HTTP connection manager or a TCP proxy on one address and port."""

from __future__ import annotations

from datetime import timedelta

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import wrappers_pb2

from gossamer.translate.common import any_of, duration, socket_address
from gossamer.translate.hcm import HCM_FILTER

TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"

INBOUND = base_pb2.INBOUND
OUTBOUND = base_pb2.OUTBOUND


def _listener(
    name: str, address: str, port: int, f: lc_pb2.Filter, direction: base_pb2.TrafficDirection
) -> listener_pb2.Listener:
    return listener_pb2.Listener(
        name=name,
        address=socket_address(address, port),
        filter_chains=[lc_pb2.FilterChain(filters=[f])],
        traffic_direction=direction,
        # Never share a port silently with a leftover process: a clash is an error (NACK).
        enable_reuse_port=wrappers_pb2.BoolValue(value=False),
    )


def http_listener(
    name: str,
    address: str,
    port: int,
    hcm: hcm_pb2.HttpConnectionManager,
    direction: base_pb2.TrafficDirection,
) -> listener_pb2.Listener:
    return _listener(
        name, address, port, lc_pb2.Filter(name=HCM_FILTER, typed_config=any_of(hcm)), direction
    )


def tcp_listener(
    name: str,
    address: str,
    port: int,
    cluster: str,
    idle_timeout: timedelta,
    direction: base_pb2.TrafficDirection,
) -> listener_pb2.Listener:
    proxy = tcp_proxy_pb2.TcpProxy(
        stat_prefix=name, cluster=cluster, idle_timeout=duration(idle_timeout)
    )
    return _listener(
        name,
        address,
        port,
        lc_pb2.Filter(name=TCP_PROXY_FILTER, typed_config=any_of(proxy)),
        direction,
    )
