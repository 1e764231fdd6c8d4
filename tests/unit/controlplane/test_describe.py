"""The assembly of ``gossamer describe`` (``controlplane.describe``): from the model, the
control plane's xDS state per proxy and the counters the hosts read, one answer."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.controlplane.describe import (
    Observed,
    describe_route,
    describe_service,
    route_callers,
    service_callers,
)
from gossamer.errors import NotFoundError
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.testing.mesh import route, service, workload
from gossamer.types import API_VERSION
from gossamer.xds.acks import ResourceAck
from gossamer.xds.resources import ResourceType
from gossamer.xds.status import ProxyStatus

WEB = "sidecar~default~web-1"
EDGE = "gateway~default~edge"


def _policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrafficPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def model() -> ModelSnapshot:
    gateway = {
        "apiVersion": API_VERSION,
        "kind": "Gateway",
        "metadata": {"name": "edge"},
        "spec": {"port": 18080},
    }
    edge_route = {
        "apiVersion": API_VERSION,
        "kind": "Route",
        "metadata": {"name": "edge"},
        "spec": {
            "gateways": ["edge"],
            "rules": [
                {"matches": [{"path": {"prefix": "/r"}}], "destinations": [{"service": "reviews"}]}
            ],
        },
    }
    manifests = [
        service("web"),
        service("reviews", 9080),
        service("frontend", 9090),
        workload(
            "web-1",
            "web",
            "127.0.0.2",
            15001,
            8001,
            host="host-a",
            dependencies=[{"service": "reviews", "localAddress": "127.0.0.2", "localPort": 9080}],
        ),
        workload("web-2", "web", "127.0.0.5", 15001, 8001, dependencies=[{"service": "frontend"}]),
        workload(
            "reviews-1",
            "reviews",
            "127.0.0.3",
            15001,
            8002,
            host="host-b",
            zone="a",
            labels={"version": "v1"},
        ),
        workload("frontend-1", "frontend", "127.0.0.4", 15001, 8003),
        route(
            "reviews",
            "reviews",
            [
                {
                    "name": "broken",
                    "matches": [{"path": {"prefix": "/broken"}, "method": "GET"}],
                    "destinations": [{"service": "reviews"}],
                    "fault": {"abort": {"status": 503, "percent": 100}},
                },
                {"matches": [{"path": {"exact": "/old"}}], "redirect": {"path": "/new"}},
            ],
        ),
        # frontend's Route sends part of its traffic to reviews: web-2 carries reviews too
        route(
            "frontend",
            "frontend",
            [
                {
                    "matches": [{"path": {"prefix": "/reviews"}}],
                    "destinations": [
                        {"service": "reviews", "subset": {"version": "v1"}, "weight": 1},
                        {"service": "frontend", "weight": 3},
                    ],
                    "retries": {"attempts": 3, "retryOn": ["5xx"]},
                    "timeout": "2s",
                },
            ],
        ),
        gateway,
        edge_route,
        _policy("reviews-cb", {"service": "reviews", "circuitBreaker": {"maxRequests": 1}}),
        _policy(
            "reviews-v1",
            {
                "service": "reviews",
                "subset": {"version": "v1"},
                "loadBalancer": {"algorithm": "leastRequest"},
            },
        ),
    ]
    return ModelSnapshot().with_changes(puts=[parse_manifest(m) for m in manifests])


def _status(node_id: str) -> ProxyStatus:
    kind, ns, name = node_id.split("~")
    return ProxyStatus(node_id, kind, ns, name, "host-a", True, "sotw", 0.0, True)


def test_the_callers_of_a_service_carry_its_clusters_and_their_listeners() -> None:
    snap = model()
    callers = {c.node_id: c for c in service_callers(snap, ("default", "reviews"))}
    assert set(callers) == {WEB, "sidecar~default~web-2", EDGE}
    web = callers[WEB]
    assert web.selects(ResourceType.CLUSTER, "outbound|default/reviews|http|version=v1")
    assert not web.selects(ResourceType.CLUSTER, "outbound|default/web|http")
    assert web.selects(ResourceType.ROUTE, "outbound|default/reviews|http")
    assert web.stats.listeners == {"http.outbound|127.0.0.2:9080.": False}
    # web-2 reaches reviews through frontend's listener, which carries frontend too
    (shared,) = callers["sidecar~default~web-2"].stats.listeners.values()
    assert shared is True
    assert (
        "depends on default/frontend, whose Route default/frontend sends to"
        in (callers["sidecar~default~web-2"].via[0])
    )
    assert callers[EDGE].selects(ResourceType.ROUTE, "gateway|default/edge")
    east_west = route_callers(snap, snap.routes[("default", "reviews")])
    assert [c.node_id for c in east_west] == [WEB]


def test_describe_service_puts_rules_policies_acks_and_flags_together() -> None:
    snap = model()
    observed = {
        WEB: Observed(
            status=_status(WEB),
            acks=[
                ResourceAck("clusters", "outbound|default/reviews|http", "v2", "v2"),
                ResourceAck("routes", "outbound|default/reviews|http", "r2", "r1"),
            ],
            host_state="active",
            stats={
                "cluster.outbound|default/reviews|http.upstream_rq_pending_overflow": 4,
                "http.outbound|127.0.0.2:9080.fault.aborts_injected": 11,
            },
        ),
        EDGE: Observed(
            status=_status(EDGE),
            acks=[ResourceAck("routes", "gateway|default/edge", "g2", "g1", nack="bad regex")],
            stats_error="host gw-host (which runs gateway~default~edge) did not pick up",
        ),
    }
    d = describe_service(snap, ("default", "reviews"), observed, {"host-b": "online"})
    assert d["service"]["ports"] == [{"name": "http", "port": 9080, "protocol": "http"}]
    assert d["service"]["mtls"] == "permissive"
    (w,) = d["workloads"]
    assert (w["zone"], w["health"], w["sidecar"], w["draining"]) == ("a", "healthy", True, False)
    assert w["host"] == "host-b (online)"
    routes = {r["name"]: r for r in d["routes"]}
    assert routes["reviews"]["why"] == "rules for calls to default/reviews"
    broken, redirect = routes["reviews"]["rules"]
    assert broken["matches"] == ["path prefix /broken and method GET"]
    assert broken["effects"] == [
        "fault: abort with 503 for 100% of requests",
        "forward to reviews",
    ]
    assert redirect["effects"] == ["redirect 301: path /new"]
    (split,) = routes["frontend"]["rules"]
    assert split["effects"] == [
        "split: reviews{version=v1} 25%, frontend 75%",
        "timeout 2s",
        "retries: 3 on 5xx",
    ]
    assert routes["edge"]["why"].startswith("sends to default/reviews (rules for gateways")
    policies = {p["name"]: p for p in d["policies"]}
    assert list(policies) == ["reviews-cb", "reviews-v1"]  # service-wide first
    assert "circuitBreaker: maxRequests=1" in policies["reviews-cb"]["settings"]
    assert policies["reviews-v1"]["subset"] == {"version": "v1"}

    proxies = {p["nodeId"]: p for p in d["proxies"]}
    assert proxies[WEB]["state"] == "pending"  # the route table is not ACKed yet
    assert proxies[WEB]["host"] == "host-a (online)"
    assert proxies[EDGE]["state"] == "rejected" and proxies[EDGE]["nacks"] == ["bad regex"]
    assert proxies["sidecar~default~web-2"]["state"] == "never connected"

    flags = d["responseFlags"]
    assert [(f["flag"], f["count"]) for f in flags["flags"]] == [("UO", 4), ("FI", 11)]
    assert flags["flags"][0]["meaning"].startswith("circuit breaker open")
    unread = {u["nodeId"]: u["error"] for u in flags["unread"]}
    assert unread[EDGE].startswith("host gw-host")
    assert unread["sidecar~default~web-2"] == "not asked"


def test_describe_route_and_names_nearby_for_what_does_not_exist() -> None:
    snap = model()
    acked = [ResourceAck("routes", "outbound|default/reviews|http", "r1", "r1")]
    d = describe_route(snap, ("default", "reviews"), {WEB: Observed(_status(WEB), acked)})
    assert d["route"]["service"] == "reviews"
    assert [r["name"] for r in d["rules"]] == ["broken", None]
    assert [(p["nodeId"], p["state"]) for p in d["proxies"]] == [(WEB, "acked")]

    with pytest.raises(
        NotFoundError, match=r"Service default/reveiws does not exist; did you mean reviews\?"
    ):
        describe_service(snap, ("default", "reveiws"), {})
    with pytest.raises(NotFoundError, match="in other namespaces: default/reviews"):
        describe_route(snap, ("shop", "reviews"), {})
    with pytest.raises(NotFoundError, match="Routes in default: edge, frontend, reviews"):
        describe_route(snap, ("default", "zzz"), {})


def test_a_tcp_caller_is_listed_with_its_listener_and_no_http_stats() -> None:
    snap = model().with_changes(
        puts=[
            parse_manifest(service("db", 5432, protocol="tcp")),
            parse_manifest(
                workload("api-1", "web", "127.0.0.6", 15001, 8001, dependencies=[{"service": "db"}])
            ),
        ]
    )
    (caller,) = service_callers(snap, ("default", "db"))
    assert caller.node_id == "sidecar~default~api-1"
    assert caller.route_tables == frozenset() and len(caller.listeners) == 1
    assert caller.stats.listeners == {}
    assert caller.stats.clusters == ("cluster.outbound|default/db|",)
