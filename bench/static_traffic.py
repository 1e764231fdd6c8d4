"""The route table and policies of ``traffic_table.py`` written by hand for a static Envoy
chain: the reference ``traffic_overhead.py`` holds Gossamer's generated chain to.

What a careful operator would write for the same behaviour and nothing more, on top of the
static mTLS pair of ``static_mtls.py`` (HTTP/2 over mTLS between the Envoys, SPIFFE ids
checked both ways): the front Envoy's inline route table has the same rules in the same
order (the same matches, rewrites, header changes, redirects, direct responses, timeouts,
retry policies — the mesh's default retries and 30 s timeout where a rule sets none — and a
catch-all), a local rate-limit filter holding the checkout rule's bucket (the route emits
its descriptor), and three clusters to the back Envoys (``shop`` = both, ``shop-v1``,
``shop-v2``) each with the TrafficPolicy's leastRequest, circuit breaker, retry budget and
outlier detection; each back Envoy has the policy's inbound rate limit as its filter's
bucket. Route and filter configs are written as dicts in Envoy's JSON form and parsed into
the typed protobufs (so a wrong field fails at once).
"""

from __future__ import annotations

from typing import Any

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format
from static_mtls import Identity, back_bootstrap, front_bootstrap
from traffic_table import API_RULES, REGEX_RULES, RETIRED, TENANT_RULES, api_prefix

from gossamer.testing.resources import Address, load_assignment

#: the mesh's defaults for a rule that sets none (docs/resources.md, Mesh.defaults)
DEFAULT_RETRY = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "num_retries": 2,
    "retriable_status_codes": [503],
}
DEFAULT_TIMEOUT = "30s"
BUCKET = {"max_tokens": 1_000_000, "tokens_per_fill": 1_000_000, "fill_interval": "1s"}
ALL = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}


def _set(headers: dict[str, str], action: str = "OVERWRITE_IF_EXISTS_OR_ADD") -> list[Any]:
    return [{"header": {"key": k, "value": v}, "append_action": action} for k, v in headers.items()]


def _forward(
    match: dict[str, Any], rule: str, cluster: str, *, timeout: str = DEFAULT_TIMEOUT,
    retry: dict[str, Any] | None = None, **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    route = {"cluster": cluster, "timeout": timeout, "retry_policy": retry or DEFAULT_RETRY}
    return {
        "match": match,
        "route": {**route, **extra.pop("action", {})},
        "response_headers_to_add": _set({"x-rule": rule}),
        **extra,
    }


def routes() -> dict[str, Any]:
    """The front Envoy's route table (Envoy's JSON form), rule for rule."""
    out: list[dict[str, Any]] = []
    for i in range(API_RULES):
        out.append(_forward(
            {"prefix": api_prefix(i)}, f"api-{i}", "shop", timeout="5s",
            action={"prefix_rewrite": f"/internal/res{i}/"},
            request_headers_to_add=_set({"x-api-version": f"v{i % 3 + 1}"}),
        ))  # fmt: skip
    for i in range(TENANT_RULES):
        out.append(_forward(
            {"prefix": "/t/", "headers": [
                {"name": "x-tenant", "string_match": {"exact": f"tenant-{i}"}}]},
            f"tenant-{i}", "shop-v2",
        ))  # fmt: skip
    for i in range(REGEX_RULES):
        out.append(_forward(
            {"safe_regex": {"regex": f"/users/[0-9]+/orders{i}"}}, f"orders-{i}", "shop",
            action={"regex_rewrite": {"pattern": {"regex": f"^/users/([0-9]+)/orders{i}$"},
                                      "substitution": f"/orders{i}/\\1"}},
        ))  # fmt: skip
    for i in range(RETIRED):
        out.append(
            {"match": {"prefix": f"/old{i}/"}, "redirect": {"prefix_rewrite": f"/new{i}/"}}
        )  # 301 is Envoy's default
        out.append(
            {
                "match": {"path": f"/legacy{i}"},
                "direct_response": {"status": 410, "body": {"inline_string": "gone"}},
            }
        )
    out.append(_forward(
        {"prefix": "/upload", "headers": [{"name": ":method", "string_match": {"exact": "POST"}}]},
        "upload", "shop", timeout="60s", retry={"num_retries": 0},
    ))  # fmt: skip
    out.append(_forward(
        {"prefix": "/search", "query_parameters": [
            {"name": "debug", "string_match": {"exact": "1"}}]},
        "search-debug", "shop", request_headers_to_add=_set({"x-debug": "1"}),
    ))  # fmt: skip
    checkout = _forward(
        {"prefix": "/shop/"}, "checkout", "shop", timeout="3s",
        retry={"retry_on": "connect-failure,refused-stream,5xx", "num_retries": 2,
               "per_try_timeout": "1s"},
        action={"rate_limits": [{"actions": [{"generic_key": {
            "descriptor_key": "rule", "descriptor_value": "checkout"}}]}]},
        request_headers_to_add=_set({"x-checkout": "1"})
        + _set({"x-trace-tag": "checkout"}, "APPEND_IF_EXISTS_OR_ADD"),
        request_headers_to_remove=["x-internal-debug"],
    )  # fmt: skip
    del checkout["route"]["cluster"]
    checkout["route"]["weighted_clusters"] = {
        "clusters": [{"name": "shop-v1", "weight": 90}, {"name": "shop-v2", "weight": 10}]
    }
    out.append(checkout)
    out.append({"match": {"prefix": "/"},
                "route": {"cluster": "shop", "timeout": DEFAULT_TIMEOUT,
                          "retry_policy": DEFAULT_RETRY}})  # fmt: skip
    return {"name": "front-routes",
            "virtual_hosts": [{"name": "shop", "domains": ["*"], "routes": out}]}  # fmt: skip


def _rate_limit(descriptor: bool) -> local_rate_limit_pb2.LocalRateLimit:
    """The checkout bucket (selected by the route's descriptor) or one bucket for all."""
    config: dict[str, Any] = {
        "stat_prefix": "local_rate_limit", "filter_enabled": ALL, "filter_enforced": ALL,
    }  # fmt: skip
    if descriptor:
        config["descriptors"] = [
            {"entries": [{"key": "rule", "value": "checkout"}], "token_bucket": BUCKET}
        ]
    else:
        config["token_bucket"] = BUCKET
    return json_format.ParseDict(config, local_rate_limit_pb2.LocalRateLimit())


def _with_rate_limit(
    listener_hcm: Any, limit: local_rate_limit_pb2.LocalRateLimit,
    table: route_pb2.RouteConfiguration | None = None,
) -> None:  # fmt: skip
    """Put the rate-limit filter before the router (and ``table`` as the routes)."""
    hcm = hcm_pb2.HttpConnectionManager()
    listener_hcm.typed_config.Unpack(hcm)
    if table is not None:
        hcm.route_config.CopyFrom(table)
    router = hcm.http_filters.pop()
    hcm.http_filters.add(name="envoy.filters.http.local_ratelimit").typed_config.Pack(limit)
    hcm.http_filters.append(router)
    listener_hcm.typed_config.Pack(hcm)


def _policy(cluster: cluster_pb2.Cluster) -> None:
    """The TrafficPolicy: leastRequest, circuit breaker, retry budget, outlier detection."""
    json_format.ParseDict({
        "lb_policy": "LEAST_REQUEST",
        "circuit_breakers": {"thresholds": [{
            "max_connections": 1000, "max_pending_requests": 1000, "max_requests": 1000,
            "retry_budget": {"budget_percent": {"value": 20}, "min_retry_concurrency": 3}}]},
        "outlier_detection": {"consecutive_5xx": 5, "interval": "10s",
                              "base_ejection_time": "30s", "max_ejection_percent": 50},
    }, cluster)  # fmt: skip


def traffic_front(
    listen: Address, backs: dict[str, Address], me: Identity, back_id: str
) -> bootstrap_pb2.Bootstrap:
    """The caller's Envoy; ``backs``: the back Envoys by version (``v1``, ``v2``)."""
    boot = front_bootstrap(listen, backs["v1"], me, back_id)
    table = json_format.ParseDict(routes(), route_pb2.RouteConfiguration())
    _with_rate_limit(boot.static_resources.listeners[0].filter_chains[0].filters[0],
                     _rate_limit(descriptor=True), table)  # fmt: skip
    (template,) = boot.static_resources.clusters
    del boot.static_resources.clusters[:]
    for name, versions in (("shop", ("v1", "v2")), ("shop-v1", ("v1",)), ("shop-v2", ("v2",))):
        cluster = boot.static_resources.clusters.add()
        cluster.CopyFrom(template)
        cluster.name = name
        cluster.load_assignment.CopyFrom(load_assignment(name, [backs[v] for v in versions]))
        _policy(cluster)
    return boot


def traffic_back(
    listen: Address, app: Address, me: Identity, trust_domain: str, name: str
) -> bootstrap_pb2.Bootstrap:
    """A callee's Envoy: the static mTLS back with the policy's inbound rate limit."""
    boot = back_bootstrap(listen, app, me, trust_domain)
    boot.node.id = boot.node.cluster = name
    _with_rate_limit(boot.static_resources.listeners[0].filter_chains[0].filters[0],
                     _rate_limit(descriptor=False))  # fmt: skip
    return boot
