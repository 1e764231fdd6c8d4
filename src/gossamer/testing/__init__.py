"""Helpers for testing with real processes: Envoy on free loopback ports, small backends, a
real control plane, and an in-memory fake of the control-plane service."""

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.validate import validate_config, validate_config_sync
from gossamer.polling import WaitTimeout, wait_until
from gossamer.testing.backends import EchoClient, GrpcBackend, HttpBackend, TcpEchoBackend
from gossamer.testing.controlplane import (
    apply_manifests,
    apply_yaml,
    mesh_envoy,
    running_control_plane,
)
from gossamer.testing.fake_controlplane import FakeControlPlane
from gossamer.testing.ports import free_port, loopback_host

__all__ = [
    "EchoClient",
    "EnvoyProcess",
    "FakeControlPlane",
    "GrpcBackend",
    "HttpBackend",
    "TcpEchoBackend",
    "WaitTimeout",
    "apply_manifests",
    "apply_yaml",
    "free_port",
    "loopback_host",
    "mesh_envoy",
    "running_control_plane",
    "validate_config",
    "validate_config_sync",
    "wait_until",
]
