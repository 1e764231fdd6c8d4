"""Route rule parts as Envoy config: per-route fields in RDS, the traffic filters in every
HCM, rate-limit buckets as the filter's descriptors in its ECDS resource (so route and
budget changes leave listeners as they are), and every proxy's config passing
``envoy --mode validate``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2
from envoy.type.v3 import percent_pb2
from traffic_rules import shop_with_rules
from translate_helpers import hcm_of, proxies, translate

from gossamer.envoy.validate import validate_config_sync
from gossamer.model import parse_yaml
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.filters import FAULT_FILTER
from gossamer.translate.global_rate_limit import GLOBAL_RATE_LIMIT_FILTER
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.rate_limit import DESCRIPTOR_KEY, LOCAL_STAGE, filter_name
from gossamer.types import ProxyIdentity

REVIEWS = "outbound|default/reviews|http"
APPEND = base_pb2.HeaderValueOption.HeaderAppendAction


def _routes() -> list[rc_pb2.Route]:
    res = translate(shop_with_rules(), "sidecar", "web-1")
    [vh] = res.routes[REVIEWS].virtual_hosts
    return list(vh.routes)


def _reviews_listener_hcm(snap=None):  # type: ignore[no-untyped-def]
    snap = snap or shop_with_rules()
    res = translate(snap, "sidecar", "web-1")
    address = snap.local_addresses[("default", "reviews")]
    return res, hcm_of(res.listeners[f"outbound|{address}:9080"])


def test_forwarding_rule_parts_are_per_route_fields() -> None:
    api = _routes()[0]
    [query] = api.match.query_parameters
    assert (query.name, query.string_match.exact) == ("debug", "1")
    assert api.match.prefix == "/api/v1"
    action = api.route
    assert action.prefix_rewrite == "/internal"
    assert action.host_rewrite_literal == "reviews.internal"
    added = {(h.header.key, h.header.value, h.append_action) for h in api.request_headers_to_add}
    # values are literal: Envoy would read "%" as the start of a command
    assert added == {
        ("x-a", "b", APPEND.OVERWRITE_IF_EXISTS_OR_ADD),
        ("x-c", "50%%", APPEND.APPEND_IF_EXISTS_OR_ADD),
    }
    assert list(api.request_headers_to_remove) == ["x-secret"]
    assert [h.header.key for h in api.response_headers_to_add] == ["x-served-by"]
    assert list(api.response_headers_to_remove) == ["server"]
    [mirror] = action.request_mirror_policies
    assert mirror.cluster == "outbound|default/shadow|http"
    assert mirror.runtime_fraction.default_value == percent_pb2.FractionalPercent(
        numerator=125_000, denominator=percent_pb2.FractionalPercent.MILLION
    )
    fault = fault_pb2.HTTPFault()
    assert api.typed_per_filter_config[FAULT_FILTER].Unpack(fault)
    assert fault.delay.fixed_delay.ToMilliseconds() == 300
    assert fault.delay.percentage.numerator == 100_000
    assert (fault.abort.http_status, fault.abort.percentage.numerator) == (503, 50_000)
    [limit] = action.rate_limits
    assert limit.stage.value == LOCAL_STAGE
    key = limit.actions[0].generic_key
    assert (key.descriptor_key, key.descriptor_value) == (DESCRIPTOR_KEY, "default/reviews/api")


def test_regex_rewrite_and_answers() -> None:
    _, items, hello, old, moved, *_ = _routes()
    assert items.match.safe_regex.regex == "/items/[0-9]+"
    assert items.route.regex_rewrite.pattern.regex == "^/items/([0-9]+)$"
    assert items.route.regex_rewrite.substitution == "/item?id=\\1"
    assert items.match.query_parameters[0].string_match.safe_regex.regex == "^[0-9]+$"
    assert hello.WhichOneof("action") == "direct_response"
    assert (hello.direct_response.status, hello.direct_response.body.inline_string) == (200, "hi")
    assert hello.match.query_parameters[0].present_match is True
    assert FAULT_FILTER in hello.typed_per_filter_config  # faults apply to answers too
    assert old.WhichOneof("action") == "redirect"
    assert old.redirect.prefix_rewrite == "/new"
    assert old.redirect.response_code == rc_pb2.RedirectAction.PERMANENT_REDIRECT
    r = moved.redirect
    assert (r.path_redirect, r.scheme_redirect, r.host_redirect, r.port_redirect) == (
        "/there",
        "https",
        "example.com",
        8443,
    )
    assert r.response_code == rc_pb2.RedirectAction.FOUND


def _descriptors(res: ProxyResources, listener: str) -> dict[str, tuple[int, int, int]]:
    """The buckets of ``listener``'s HCM: in the ECDS resource its filter names."""
    hcm = hcm_of(res.listeners[listener])
    [f] = [f for f in hcm.http_filters if f.name == filter_name(listener)]
    assert f.HasField("config_discovery") and not f.HasField("typed_config")
    config = local_rate_limit_pb2.LocalRateLimit()
    assert res.extension_configs[f.name].typed_config.Unpack(config)
    assert config.filter_enforced.default_value.numerator == 100
    assert not config.HasField("token_bucket")  # unmatched requests are not limited
    out = {}
    for d in config.descriptors:
        [entry] = d.entries
        assert entry.key == DESCRIPTOR_KEY
        b = d.token_bucket
        out[entry.value] = (b.max_tokens, b.tokens_per_fill.value, b.fill_interval.seconds)
    return out


def test_every_hcm_has_the_traffic_filters_and_its_buckets() -> None:
    res, hcm = _reviews_listener_hcm()
    names = [f.name for f in hcm.http_filters]
    assert names[-4:] == [
        filter_name(hcm.stat_prefix),
        GLOBAL_RATE_LIMIT_FILTER,
        FAULT_FILTER,
        "envoy.filters.http.router",
    ]
    assert _descriptors(res, hcm.stat_prefix) == {
        "default/reviews/api": (100, 100, 60),
        "default/reviews/#1": (5, 5, 1),
    }
    # No rule limits ratings: the filter is there, with no bucket.
    inbound = hcm_of(res.listeners["inbound|http"])
    assert [f.name for f in inbound.http_filters][-3:] == names[-3:]
    assert _descriptors(res, "inbound|http") == {}
    gateway = translate(shop_with_rules(), "gateway", "edge")
    assert _descriptors(gateway, "gateway|default/edge") == {
        "default/edge-rules/limited": (3, 3, 60)
    }


def test_a_rule_change_leaves_listeners_alone() -> None:
    """Only the route table changes when a rule's parts (headers, faults, destinations,
    another rule) change: the listener, and with it the rate-limit buckets, stay. (An
    unnamed limited rule is known by its index: it keeps its place here.)"""
    snap = shop_with_rules()
    translator = Translator()
    web1 = ProxyIdentity("sidecar", "default", "web-1")
    before = translator.proxy(snap, web1)
    changed = parse_yaml(
        """
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: reviews}
spec:
  service: reviews
  rules:
  - name: api
    matches: [{path: {prefix: /api/v2}}]
    headers: {request: {set: {x-a: changed}}}
    destinations: [{service: reviews}]
    fault: {abort: {status: 500, percent: 1}}
    rateLimit: {requests: 100, per: 1m}
  - matches: [{path: {prefix: /items}}]
    destinations: [{service: reviews, subset: {version: v1}}]
    rateLimit: {requests: 5, per: 1s}
  - matches: [{path: {exact: /new}}]
    directResponse: {status: 200, body: "new"}
""",
        "changed.yaml",
    )
    after = translator.proxy(snap.with_changes(changed), web1)
    assert after.routes[REVIEWS] != before.routes[REVIEWS]
    assert after.listeners == before.listeners


@pytest.mark.integration
def test_every_proxy_with_rule_parts_passes_envoy_validate() -> None:
    snap = shop_with_rules()
    translator = Translator()
    bootstraps = {}
    for ident in proxies(snap):
        res = translator.proxy(snap, ident)
        assert res.missing_references() == []
        bootstraps[ident.node_id] = static_bootstrap(
            listeners=res.listeners.values(),
            clusters=res.clusters.values(),
            endpoints=res.endpoints.values(),
            routes=res.routes.values(),
            node=ident,
            extension_configs=res.extension_configs.values(),
        )

    def error(node: str) -> str | None:
        try:
            validate_config_sync(bootstraps[node], timeout_s=120.0)
        except Exception as exc:  # every proxy's failure, not just the first
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        errors = dict(zip(bootstraps, pool.map(error, bootstraps), strict=True))
    assert {n: e for n, e in errors.items() if e is not None} == {}
    assert {"sidecar~default~web-1", "gateway~default~edge"} <= set(errors)
