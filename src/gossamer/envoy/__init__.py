"""Running real Envoy processes: finding the binary and checking its version, spawning them,
their admin API (``EnvoyAdmin``, the one client), keeping one running
(``EnvoySupervisor``, for the gateway and the agent), and checking configurations with
``envoy --mode validate``. Used by the agent, the gateway, the control plane's
``proxy-config``, the demo and the tests."""

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.envoy.binary import SUPPORTED_VERSION, check_version, find_envoy
from gossamer.envoy.process import ManagedProcess
from gossamer.envoy.proxy import EnvoyProcess, bootstrap_json
from gossamer.envoy.supervisor import Drain, EnvoySupervisor
from gossamer.envoy.validate import validate_config, validate_config_sync

__all__ = [
    "SUPPORTED_VERSION",
    "Drain",
    "EnvoyAdmin",
    "EnvoyProcess",
    "EnvoySupervisor",
    "ManagedProcess",
    "bootstrap_json",
    "check_version",
    "find_envoy",
    "validate_config",
    "validate_config_sync",
]
