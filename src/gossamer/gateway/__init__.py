"""``gossamer gateway``: run and supervise an Envoy ingress gateway configured over xDS by
``Gateway`` and ``Route`` resources."""

from gossamer.gateway.runner import GatewayRunner
from gossamer.gateway.settings import GatewaySettings, gateway_bootstrap

__all__ = ["GatewayRunner", "GatewaySettings", "gateway_bootstrap"]
