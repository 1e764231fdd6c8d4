"""Translator output for the shop mesh: what a sidecar and a gateway get, and their settings."""

from __future__ import annotations

from datetime import timedelta

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, health_check_pb2, protocol_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from shop import shop
from translate_helpers import (
    hcm_of,
    proxies,
    shop_with_legacy,
    tcp_proxy_of,
    translate,
    upstream_http,
)

from gossamer.model import parse_yaml
from gossamer.translate.proxy import ProxyResources, Translator

REVIEWS = "outbound|default/reviews|http"
REVIEWS_V1 = "outbound|default/reviews|http|version=v1"
REVIEWS_V2 = "outbound|default/reviews|http|version=v2"
RATINGS = "outbound|default/ratings|grpc"
DB = "outbound|default/db|tcp"
WEB = "outbound|default/web|http"
HCM = hcm_pb2.HttpConnectionManager


def _all_route_tables(res: ProxyResources) -> list[route_pb2.RouteConfiguration]:
    """RDS tables and the tables inlined in listeners."""
    tables = list(res.routes.values())
    for listener in res.listeners.values():
        if listener.filter_chains[0].filters[0].name.endswith("http_connection_manager"):
            hcm = hcm_of(listener)
            if hcm.HasField("route_config"):
                tables.append(hcm.route_config)
    return tables


def test_sidecar_has_exactly_its_inbound_and_dependencies() -> None:
    snap = shop()
    res = translate(snap, "sidecar", "web-1")
    vip = snap.local_addresses
    assert set(res.listeners) == {
        "inbound|http",
        f"outbound|{vip[('default', 'reviews')]}:9080",
        f"outbound|{vip[('default', 'ratings')]}:9090",
        f"outbound|{vip[('default', 'db')]}:5432",
    }
    # reviews: the whole service (the catch-all) and the two subsets its Route sends to
    outbound = {REVIEWS, REVIEWS_V1, REVIEWS_V2, RATINGS, DB}
    assert set(res.clusters) == {"inbound|http"} | outbound
    # (and its bootstrap's local cluster's: its own service's instances)
    assert set(res.endpoints) == outbound | {"local|default/web"}
    assert set(res.routes) == {"inbound|http", REVIEWS, RATINGS}
    for name, cla in res.endpoints.items():
        assert cla.cluster_name == name
        if name.startswith("local|"):
            continue  # (its cluster is in the bootstrap)
        assert res.clusters[name].type == cluster_pb2.Cluster.EDS
        assert res.clusters[name].eds_cluster_config.service_name == name


def test_sidecar_inbound_listener_and_cluster() -> None:
    res = translate(shop(), "sidecar", "web-1")
    inbound = res.listeners["inbound|http"]
    assert inbound.address.socket_address.address == "127.0.0.2"
    assert inbound.address.socket_address.port_value == 15001
    assert inbound.traffic_direction == base_pb2.INBOUND
    assert inbound.enable_reuse_port.value is False
    hcm = hcm_of(inbound)
    # in RDS, so a rule or policy change on it never changes (drains) the listener
    assert hcm.WhichOneof("route_specifier") == "rds"
    assert hcm.rds.route_config_name == "inbound|http"
    [vh] = res.routes["inbound|http"].virtual_hosts
    [only] = vh.routes
    assert only.route.cluster == "inbound|http"

    cluster = res.clusters["inbound|http"]
    assert cluster.type == cluster_pb2.Cluster.STATIC
    [locality] = cluster.load_assignment.endpoints
    [ep] = locality.lb_endpoints
    assert ep.endpoint.address.socket_address.address == "127.0.0.1"
    assert ep.endpoint.address.socket_address.port_value == 18080
    assert upstream_http(dict(cluster.typed_extension_protocol_options)) == "http1"


def test_outbound_listeners_use_rds_or_tcp_proxy() -> None:
    snap = shop()
    res = translate(snap, "sidecar", "web-1")
    vip = snap.local_addresses
    reviews = res.listeners[f"outbound|{vip[('default', 'reviews')]}:9080"]
    assert reviews.traffic_direction == base_pb2.OUTBOUND
    assert reviews.address.socket_address.address == vip[("default", "reviews")]
    assert hcm_of(reviews).rds.route_config_name == REVIEWS
    assert hcm_of(reviews).rds.config_source.HasField("ads")
    ratings = res.listeners[f"outbound|{vip[('default', 'ratings')]}:9090"]
    assert hcm_of(ratings).rds.route_config_name == RATINGS

    db = res.listeners[f"outbound|{vip[('default', 'db')]}:5432"]
    tcp = tcp_proxy_of(db)
    assert tcp.cluster == DB
    assert tcp.idle_timeout.ToTimedelta() == snap.mesh.spec.defaults.idleTimeout
    assert not res.clusters[DB].typed_extension_protocol_options  # TCP: no HTTP options


def test_reviews_route_table_has_the_route_rules() -> None:
    snap = shop()
    res = translate(snap, "sidecar", "web-1")
    table = res.routes[REVIEWS]
    [vh] = table.virtual_hosts
    assert list(vh.domains) == ["*"]
    canary, split, fallback = vh.routes

    [header] = canary.match.headers
    assert header.name == "x-canary" and header.string_match.exact == "1"
    assert canary.route.cluster == REVIEWS_V2
    assert not canary.route.HasField("metadata_match")
    assert canary.route.timeout.ToTimedelta() == snap.mesh.spec.defaults.requestTimeout
    # a rule without retries gets the mesh's safe default: another host, 503 and resets only
    default = canary.route.retry_policy
    assert default.num_retries.value == 2
    assert "connect-failure" in default.retry_on and "retriable-status-codes" in default.retry_on
    assert list(default.retriable_status_codes) == [503]
    assert [p.name for p in default.retry_host_predicate] == [
        "envoy.retry_host_predicates.previous_hosts"
    ]

    assert split.match.prefix == "/"
    weighted = split.route.weighted_clusters.clusters
    assert [(c.name, c.weight.value) for c in weighted] == [(REVIEWS_V1, 80), (REVIEWS_V2, 20)]
    assert not any(c.HasField("metadata_match") for c in weighted)
    assert split.route.timeout.ToTimedelta() == timedelta(seconds=2)
    retry = split.route.retry_policy
    assert retry.retry_on == "5xx,reset"
    assert retry.num_retries.value == 3
    assert retry.per_try_timeout.ToTimedelta() == timedelta(milliseconds=500)

    assert fallback.match.prefix == "/" and not fallback.match.headers
    assert fallback.route.cluster == REVIEWS
    assert not fallback.route.HasField("metadata_match")

    # Subsets are clusters of their own: no cluster uses Envoy's subset load balancer.
    for cluster in res.clusters.values():
        assert not cluster.HasField("lb_subset_config"), cluster.name


def test_grpc_dependency_has_no_timeout_and_honours_grpc_timeout() -> None:
    res = translate(shop(), "sidecar", "web-1")
    [vh] = res.routes[RATINGS].virtual_hosts
    [only] = vh.routes
    assert only.route.cluster == RATINGS
    assert only.route.HasField("timeout") and only.route.timeout.ToTimedelta() == timedelta(0)
    assert only.route.max_stream_duration.HasField("grpc_timeout_header_max")
    assert only.route.max_stream_duration.grpc_timeout_header_max.ToTimedelta() == timedelta(0)
    assert upstream_http(dict(res.clusters[RATINGS].typed_extension_protocol_options)) == "http2"


def test_every_route_has_an_explicit_timeout() -> None:
    snap = shop()
    for ident in proxies(snap):
        res = Translator().proxy(snap, ident)
        for table in _all_route_tables(res):
            for vh in table.virtual_hosts:
                for r in vh.routes:
                    assert r.route.HasField("timeout"), (ident.name, table.name, r)


def test_every_hcm_has_the_safe_defaults() -> None:
    snap = shop()
    defaults = snap.mesh.spec.defaults
    seen = 0
    for ident in proxies(snap):
        res = Translator().proxy(snap, ident)
        for listener in res.listeners.values():
            if listener.filter_chains[0].filters[0].name.endswith("tcp_proxy"):
                continue
            hcm = hcm_of(listener)
            seen += 1
            where = f"{ident.name} {listener.name}"
            assert hcm.normalize_path.value is True, where
            assert hcm.merge_slashes is True, where
            assert hcm.path_with_escaped_slashes_action == HCM.UNESCAPE_AND_REDIRECT, where
            options = hcm.common_http_protocol_options
            assert (
                options.headers_with_underscores_action
                == protocol_pb2.HttpProtocolOptions.REJECT_REQUEST
            ), where
            assert options.idle_timeout.ToTimedelta() == defaults.idleTimeout, where
            assert hcm.stream_error_on_invalid_http_message.value is True, where
            assert hcm.HasField("request_headers_timeout"), where
            assert hcm.request_headers_timeout.ToTimedelta() > timedelta(0), where
            assert hcm.stream_idle_timeout.ToTimedelta() == defaults.streamIdleTimeout, where
            assert hcm.drain_timeout.ToTimedelta() == defaults.drainTimeout, where
            assert [f.name for f in hcm.http_filters][-1] == "envoy.filters.http.router", where
    assert seen == 4 + 2 + 1  # 4 HTTP inbound (db is TCP), web-1's 2 HTTP dependencies, gateway


def test_underscore_header_action_follows_the_mesh() -> None:
    mesh = parse_yaml(
        "apiVersion: gossamer.dev/v1\nkind: Mesh\nmetadata: {name: default}\n"
        "spec: {underscoreHeaders: drop}\n"
    )
    snap = shop().with_changes(mesh)
    res = translate(snap, "sidecar", "web-1")
    for listener in res.listeners.values():
        if listener.name == "inbound|http" or "9080" in listener.name:
            assert (
                hcm_of(listener).common_http_protocol_options.headers_with_underscores_action
                == protocol_pb2.HttpProtocolOptions.DROP_HEADER
            )


def test_gateway_edge_settings() -> None:
    snap = shop()
    res = translate(snap, "gateway", "edge")
    assert set(res.listeners) == {"gateway|default/edge"}
    assert set(res.routes) == {"gateway|default/edge"}
    assert set(res.clusters) == set(res.endpoints) == {RATINGS, WEB}
    listener = res.listeners["gateway|default/edge"]
    assert listener.address.socket_address.address == "127.0.0.1"
    assert listener.address.socket_address.port_value == 18000
    hcm = hcm_of(listener)
    assert hcm.use_remote_address.value is True
    assert hcm.xff_num_trusted_hops == 0
    assert hcm.preserve_external_request_id is False  # clients cannot choose the request id
    assert hcm.rds.route_config_name == "gateway|default/edge"

    table = res.routes["gateway|default/edge"]
    assert [list(vh.domains) for vh in table.virtual_hosts] == [["*"], ["shop.example.com"]]
    for vh in table.virtual_hosts:
        post, rest = vh.routes
        assert post.match.prefix == "/api/ratings"
        assert [(h.name, h.string_match.exact) for h in post.match.headers] == [(":method", "POST")]
        assert post.route.cluster == RATINGS
        assert post.route.max_stream_duration.HasField("grpc_timeout_header_max")
        assert rest.route.cluster == WEB

    # Sidecars trust their caller's headers; they are not the edge.
    for listener in translate(snap, "sidecar", "web-1").listeners.values():
        if not listener.filter_chains[0].filters[0].name.endswith("tcp_proxy"):
            sidecar_hcm = hcm_of(listener)
            assert not sidecar_hcm.use_remote_address.value
            assert sidecar_hcm.preserve_external_request_id is True


def test_gateway_trusted_hops() -> None:
    edge = parse_yaml(
        "apiVersion: gossamer.dev/v1\nkind: Gateway\nmetadata: {name: edge}\n"
        "spec: {address: 127.0.0.1, port: 18000, hosts: ['*'], trustedHops: 2}\n"
    )
    res = translate(shop().with_changes(edge), "gateway", "edge")
    assert hcm_of(res.listeners["gateway|default/edge"]).xff_num_trusted_hops == 2


def test_cluster_protocol_between_sidecars_and_to_plain_processes() -> None:
    snap = shop_with_legacy()
    res = translate(snap, "sidecar", "web-2")
    # Sidecar to sidecar: multiplexed HTTP/2 even though reviews speaks http.
    assert upstream_http(dict(res.clusters[REVIEWS].typed_extension_protocol_options)) == "http2"
    # No sidecar on the far end: the app's own protocol.
    legacy = res.clusters["outbound|default/legacy|http"]
    assert upstream_http(dict(legacy.typed_extension_protocol_options)) == "http1"
    assert not legacy.HasField("lb_subset_config")


def test_endpoints_carry_health_weight_and_zone() -> None:
    snap = shop_with_legacy()
    res = translate(snap, "sidecar", "web-2")
    reviews = res.endpoints[REVIEWS]
    by_zone = {loc.locality.zone: list(loc.lb_endpoints) for loc in reviews.endpoints}
    assert set(by_zone) == {"", "b"}
    [v1] = by_zone[""]
    [v2] = by_zone["b"]
    assert v1.endpoint.hostname == "reviews-1"
    assert v1.endpoint.address.socket_address.address == "127.0.0.3"
    assert v1.endpoint.address.socket_address.port_value == 15001  # the sidecar, not the app
    assert v1.health_status == health_check_pb2.HEALTHY
    assert v1.load_balancing_weight.value == 1
    assert v2.endpoint.hostname == "reviews-2"
    # Labels select subsets by cluster, so endpoints carry no metadata.
    assert not v1.HasField("metadata") and not v2.HasField("metadata")

    [legacy_loc] = res.endpoints["outbound|default/legacy|http"].endpoints
    assert legacy_loc.locality.zone == "z9"
    [legacy] = legacy_loc.lb_endpoints
    assert legacy.health_status == health_check_pb2.DRAINING
    assert legacy.load_balancing_weight.value == 7
    assert legacy.endpoint.address.socket_address.port_value == 18081


def test_unhealthy_workloads_stay_listed() -> None:
    sick = parse_yaml(
        "apiVersion: gossamer.dev/v1\nkind: Workload\n"
        "metadata: {name: reviews-1, labels: {version: v1}}\n"
        "spec: {service: reviews, address: 127.0.0.3, health: unhealthy,"
        " ports: [{port: 15001, appPort: 19080}]}\n"
    )
    res = translate(shop().with_changes(sick), "sidecar", "web-1")
    statuses = {
        ep.endpoint.hostname: ep.health_status
        for loc in res.endpoints[REVIEWS].endpoints
        for ep in loc.lb_endpoints
    }
    assert statuses == {
        "reviews-1": health_check_pb2.UNHEALTHY,
        "reviews-2": health_check_pb2.HEALTHY,
    }


def test_unchanged_snapshot_reuses_the_same_objects() -> None:
    snap = shop()
    translator = Translator()
    ident = proxies(snap)[-1]  # the gateway
    first = translator.proxy(snap, ident)
    second = translator.proxy(snap, ident)
    for kind in ("clusters", "endpoints"):
        a, b = getattr(first, kind), getattr(second, kind)
        assert a.keys() == b.keys()
        assert all(a[n] is b[n] for n in a), kind
    web1_ident = next(p for p in proxies(snap) if p.name == "web-1")
    once = translator.proxy(snap, web1_ident)
    twice = translator.proxy(snap, web1_ident)
    for name in (REVIEWS, RATINGS, DB):
        assert once.clusters[name] is twice.clusters[name]
        assert once.endpoints[name] is twice.endpoints[name]
    for name in (REVIEWS, RATINGS):
        assert once.routes[name] is twice.routes[name]
    # Two sidecars calling the same service share its cluster, endpoints and routes.
    web1 = translator.proxy(snap, next(p for p in proxies(snap) if p.name == "web-1"))
    assert web1.clusters[RATINGS] is first.clusters[RATINGS]
    assert web1.endpoints[RATINGS] is first.endpoints[RATINGS]


def test_changing_one_workload_rebuilds_only_its_service_endpoints() -> None:
    snap = shop()
    translator = Translator()
    web1 = next(p for p in proxies(snap) if p.name == "web-1")
    before = translator.proxy(snap, web1)
    heavier = parse_yaml(
        "apiVersion: gossamer.dev/v1\nkind: Workload\n"
        "metadata: {name: ratings-1}\n"
        "spec: {service: ratings, address: 127.0.0.5, weight: 9,"
        " ports: [{port: 15001, appPort: 19090}]}\n"
    )
    after = translator.proxy(snap.with_changes(heavier), web1)

    assert after.endpoints[RATINGS] is not before.endpoints[RATINGS]
    assert after.endpoints[RATINGS] != before.endpoints[RATINGS]
    [loc] = after.endpoints[RATINGS].endpoints
    assert loc.lb_endpoints[0].load_balancing_weight.value == 9
    for name in (REVIEWS, DB):
        assert after.endpoints[name] is before.endpoints[name], name
    for name in before.clusters:
        if name != "inbound|http":
            assert after.clusters[name] is before.clusters[name], name
    for name in before.routes:
        assert after.routes[name] is before.routes[name], name


def test_route_change_keeps_clusters_and_endpoints() -> None:
    snap = shop()
    translator = Translator()
    web1 = next(p for p in proxies(snap) if p.name == "web-1")
    before = translator.proxy(snap, web1)
    slower = parse_yaml(
        "apiVersion: gossamer.dev/v1\nkind: Route\nmetadata: {name: reviews}\n"
        "spec: {service: reviews, rules: [{matches: [{path: {prefix: /}}],"
        " destinations: [{service: reviews, subset: {version: v1}}], timeout: 9s}]}\n"
    )
    after = translator.proxy(snap.with_changes(slower), web1)
    assert after.routes[REVIEWS] is not before.routes[REVIEWS]
    assert after.routes[RATINGS] is before.routes[RATINGS]
    assert after.endpoints[REVIEWS] is before.endpoints[REVIEWS]
    assert after.clusters[DB] is before.clusters[DB]
    [vh] = after.routes[REVIEWS].virtual_hosts
    assert vh.routes[0].route.timeout.ToTimedelta() == timedelta(seconds=9)
