"""What the translator emits is self-consistent; a dangling reference is named."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from shop import shop

from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.routes import cluster_references
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


def test_a_gateway_table_is_checked_by_the_references_walked_once_for_it() -> None:
    """A gateway's table is walked for its references once, however many gateways share
    it; the check of each gateway compares those with its clusters, and still names what
    is missing."""
    snap = shop()
    t = Translator()
    gateways = [ProxyIdentity("gateway", ns, name) for ns, name in snap.gateways]
    assert gateways
    for gw in gateways:
        res = t.proxy(snap, gw)
        [(name, table)] = res.routes.items()
        assert res.route_refs[name] == cluster_references(table)
        assert res.route_refs[name], "the shop's gateway routes somewhere"
        ghost = cluster_references(table) | {"ghost"}
        broken = ProxyResources(
            clusters=res.clusters,
            endpoints=res.endpoints,
            routes=res.routes,
            route_refs={name: ghost},
        )
        assert broken.missing_references() == [f"route {table.name} needs cluster ghost"]
