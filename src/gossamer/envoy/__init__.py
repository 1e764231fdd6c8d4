"""Running real Envoy processes: finding the binary and checking its version, spawning and
supervising them, their admin API, and checking configurations with ``envoy --mode
validate``. Used by the agent, the gateway, the demo and the tests."""

from gossamer.envoy.binary import SUPPORTED_VERSION, check_version, find_envoy
from gossamer.envoy.process import ManagedProcess
from gossamer.envoy.proxy import EnvoyProcess, bootstrap_json
from gossamer.envoy.validate import validate_config, validate_config_sync

__all__ = [
    "SUPPORTED_VERSION",
    "EnvoyProcess",
    "ManagedProcess",
    "bootstrap_json",
    "check_version",
    "find_envoy",
    "validate_config",
    "validate_config_sync",
]
