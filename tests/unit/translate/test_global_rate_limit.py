"""Global rate limits as Envoy config: the ``ratelimit`` filter in every HCM (failure mode
and timeout from the Mesh), routes of a globally limited rule emitting its descriptor at
stage 0 (with the key's action), the service's cluster only where a rule needs it, and
``envoy --mode validate`` of it all."""

from __future__ import annotations

from datetime import timedelta

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.extensions.filters.http.ratelimit.v3 import rate_limit_pb2
from envoy.extensions.rate_limit_descriptors.expr.v3 import expr_pb2
from shop import shop
from translate_helpers import hcm_of

from gossamer.envoy.validate import validate_config_sync
from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.translate import global_rate_limit as grl
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.proxy import Translator
from gossamer.types import ProxyIdentity

LIMITS = """
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: reviews}
spec:
  service: reviews
  rules:
  - {name: by-key, matches: [{path: {prefix: /key}}], destinations: [{service: reviews}],
     rateLimit: {requests: 10, per: 1s, global: true, key: {header: X-Api-Key}}}
  - {name: by-caller, matches: [{path: {prefix: /caller}}], destinations: [{service: reviews}],
     rateLimit: {requests: 10, per: 1m, global: true, key: {caller: true}}}
  - {name: by-client, matches: [{path: {prefix: /client}}], destinations: [{service: reviews}],
     rateLimit: {requests: 10, per: 1h, global: true, key: {clientAddress: true}}}
  - {name: by-path, matches: [{path: {prefix: /path}}], destinations: [{service: reviews}],
     rateLimit: {requests: 10, per: 1d, global: true, key: {path: true}}}
  - {name: by-method, matches: [{path: {prefix: /method}}], destinations: [{service: reviews}],
     rateLimit: {requests: 10, per: 1s, global: true, key: {method: true}}}
  - {name: whole, matches: [{path: {prefix: /}}], destinations: [{service: reviews}],
     rateLimit: {requests: 10, per: 1s, global: true}}
---
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {name: default}
spec: {rateLimit: {failureMode: closed, timeout: 250ms}}
"""
SERVICE = grl.RateLimitService("127.0.0.1", 18081)
WEB = ProxyIdentity("sidecar", "default", "web-1")
REVIEWS_SIDECAR = ProxyIdentity("sidecar", "default", "reviews-1")


def limited() -> ModelSnapshot:
    return shop().with_changes(parse_yaml(LIMITS, "limits.yaml"))


def _filter_config(hcm) -> rate_limit_pb2.RateLimit:  # type: ignore[no-untyped-def]
    [f] = [f for f in hcm.http_filters if f.name == grl.GLOBAL_RATE_LIMIT_FILTER]
    config = rate_limit_pb2.RateLimit()
    assert f.typed_config.Unpack(config)
    return config


def test_the_filter_follows_the_mesh_and_names_the_cluster() -> None:
    snap = limited()
    res = Translator(SERVICE).proxy(snap, WEB)
    address = snap.local_addresses[("default", "reviews")]
    config = _filter_config(hcm_of(res.listeners[f"outbound|{address}:9080"]))
    assert config.failure_mode_deny is True
    assert config.timeout.ToTimedelta() == timedelta(milliseconds=250)
    assert (config.domain, config.stage) == (grl.DOMAIN, grl.GLOBAL_STAGE)
    assert config.rate_limit_service.grpc_service.envoy_grpc.cluster_name == grl.CLUSTER
    assert config.enable_x_ratelimit_headers == rate_limit_pb2.RateLimit.DRAFT_VERSION_03
    # the default mesh: fail open; every HCM has the filter, also with no rule limited
    plain = Translator().proxy(shop(), REVIEWS_SIDECAR)
    assert _filter_config(hcm_of(plain.listeners["inbound|http"])).failure_mode_deny is False


def test_routes_emit_the_rule_and_its_key() -> None:
    res = Translator(SERVICE).proxy(limited(), WEB)
    [vh] = res.routes["outbound|default/reviews|http"].virtual_hosts
    by_prefix: dict[str, list[rc_pb2.RateLimit]] = {}
    for r in vh.routes:  # first match wins (the table's default route "/" comes last)
        by_prefix.setdefault(r.match.prefix, list(r.route.rate_limits))
    for prefix, limits in by_prefix.items():
        [limit] = limits
        assert limit.stage.value == grl.GLOBAL_STAGE
        rule = limit.actions[0].generic_key
        assert (rule.descriptor_key, rule.descriptor_value) == (
            grl.RULE_KEY,
            f"default/reviews/{'whole' if prefix == '/' else 'by-' + prefix[1:]}",
        )
    key = by_prefix["/key"][0].actions[1].request_headers
    assert (key.header_name, key.descriptor_key, key.skip_if_absent) == ("x-api-key", "key", True)
    assert by_prefix["/caller"][0].actions[1].HasField("source_cluster")
    assert by_prefix["/client"][0].actions[1].HasField("remote_address")
    expr = expr_pb2.Descriptor()
    assert by_prefix["/path"][0].actions[1].extension.typed_config.Unpack(expr)
    assert expr.text == "request.url_path"
    assert by_prefix["/method"][0].actions[1].request_headers.header_name == ":method"
    assert len(by_prefix["/"][0].actions) == 1


def test_only_proxies_routing_a_global_rule_get_the_cluster() -> None:
    snap = limited()
    translator = Translator(SERVICE)
    web = translator.proxy(snap, WEB)
    cluster = web.clusters[grl.CLUSTER]
    [ep] = cluster.load_assignment.endpoints[0].lb_endpoints
    assert ep.endpoint.address.socket_address.port_value == 18081
    assert grl.CLUSTER not in translator.proxy(snap, REVIEWS_SIDECAR).clusters
    assert grl.CLUSTER not in Translator().proxy(snap, WEB).clusters  # nowhere to ask


@pytest.mark.integration
def test_a_proxy_with_global_limits_passes_envoy_validate() -> None:
    res = Translator(SERVICE).proxy(limited(), WEB)
    assert res.missing_references() == []
    validate_config_sync(
        static_bootstrap(
            listeners=res.listeners.values(),
            clusters=res.clusters.values(),
            endpoints=res.endpoints.values(),
            routes=res.routes.values(),
            node=WEB,
        ),
        timeout_s=120.0,
    )
