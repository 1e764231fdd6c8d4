"""Helpers for testing with real processes: Envoy on free loopback ports, small backends, a
real control plane, an in-memory fake of the control-plane service, and a fake Envoy on an
ADS stream (``AdsClient``: in-process or over gRPC)."""

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.validate import validate_config, validate_config_sync
from gossamer.errors import PollTimeoutError
from gossamer.polling import wait_until
from gossamer.testing import ads_client
from gossamer.testing.ads_client import AdsClient, envoy_node
from gossamer.testing.backends import EchoClient, GrpcBackend, HttpBackend, TcpEchoBackend
from gossamer.testing.controlplane import (
    apply_manifests,
    apply_yaml,
    memory_control_plane,
    mesh_envoy,
    running_control_plane,
)
from gossamer.testing.fake_controlplane import FakeControlPlane
from gossamer.testing.ports import free_port, loopback_host

__all__ = [
    "AdsClient",
    "EchoClient",
    "EnvoyAdmin",
    "EnvoyProcess",
    "FakeControlPlane",
    "GrpcBackend",
    "HttpBackend",
    "PollTimeoutError",
    "TcpEchoBackend",
    "ads_client",
    "apply_manifests",
    "apply_yaml",
    "envoy_node",
    "free_port",
    "loopback_host",
    "memory_control_plane",
    "mesh_envoy",
    "running_control_plane",
    "validate_config",
    "validate_config_sync",
    "wait_until",
]
