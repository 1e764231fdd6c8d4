"""What the translator emits is self-consistent; a dangling reference is named."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from shop import shop

from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.types import ProxyIdentity


def test_every_proxy_of_the_shop_is_consistent() -> None:
    snap = shop()
    t = Translator()
    proxies = [ProxyIdentity("sidecar", ns, name) for ns, name in snap.workloads]
    proxies += [ProxyIdentity("gateway", ns, name) for ns, name in snap.gateways]
    for p in proxies:
        assert t.proxy(snap, p).missing_references() == [], p.node_id


def test_a_route_to_a_missing_cluster_is_named() -> None:
    table = route_pb2.RouteConfiguration(
        name="r",
        virtual_hosts=[
            rc_pb2.VirtualHost(
                name="v",
                domains=["*"],
                routes=[
                    rc_pb2.Route(
                        match=rc_pb2.RouteMatch(prefix="/"),
                        route=rc_pb2.RouteAction(cluster="ghost"),
                    )
                ],
            )
        ],
    )
    assert ProxyResources(routes={"r": table}).missing_references() == [
        "route r needs cluster ghost"
    ]
