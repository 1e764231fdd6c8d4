"""Running real Envoy processes: spawning and supervising them, their admin API, and checking
configurations with ``envoy --mode validate``. Used by the gateway, the demo and the tests."""

from gossamer.envoy.process import ManagedProcess
from gossamer.envoy.proxy import EnvoyProcess, bootstrap_json, find_envoy
from gossamer.envoy.validate import validate_config, validate_config_sync

__all__ = [
    "EnvoyProcess",
    "ManagedProcess",
    "bootstrap_json",
    "find_envoy",
    "validate_config",
    "validate_config_sync",
]
