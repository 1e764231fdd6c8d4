"""How Gossamer names the Envoy resources it generates. Nothing else spells these out.

Names contain no dots, so Envoy's default stat-tag extraction leaves them whole.
"""

from __future__ import annotations

from gossamer.model.snapshot import Ref

XDS_CLUSTER = "gossamer-xds"


def _svc(ref: Ref) -> str:
    return f"{ref[0]}/{ref[1]}"


def outbound_cluster(service: Ref, port: str) -> str:
    """The cluster of one service port, e.g. ``outbound|default/cart|http``."""
    return f"outbound|{_svc(service)}|{port}"


def outbound_route(service: Ref, port: str) -> str:
    """The route configuration every caller of one service port shares."""
    return f"outbound|{_svc(service)}|{port}"


def outbound_listener(address: str, port: int) -> str:
    return f"outbound|{address}:{port}"


def inbound_cluster(port: str) -> str:
    """The local app behind a sidecar, one cluster per service port."""
    return f"inbound|{port}"


def inbound_listener(port: str) -> str:
    return f"inbound|{port}"


def gateway_listener(gateway: Ref) -> str:
    return f"gateway|{_svc(gateway)}"


def gateway_route(gateway: Ref) -> str:
    return f"gateway|{_svc(gateway)}"
