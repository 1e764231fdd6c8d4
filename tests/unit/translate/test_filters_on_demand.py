"""The traffic filters that only act for a route that asks (the global rate limit, fault
injection) are in every HCM but off (``disabled``), and the routes of a rule that uses one
turn it on: a request on any other route never instantiates them. Measured with
``bench/mtls_features.py``: the global rate-limit filter builds its gRPC client for every
request it sees (~21k instructions, ~6 % of the mTLS chain's per-request cost), the fault
filter ~5k; the local rate limit stays on (its buckets are the filter's own config)."""

from __future__ import annotations

from shop import shop
from translate_helpers import hcm_of

from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.translate import global_rate_limit as grl
from gossamer.translate.filters import FAULT_FILTER
from gossamer.translate.proxy import Translator
from gossamer.translate.rate_limit import LOCAL_RATE_LIMIT_FILTER
from gossamer.types import ProxyIdentity

RULES = """
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: reviews}
spec:
  service: reviews
  rules:
  - {name: limited, matches: [{path: {prefix: /limited}}], destinations: [{service: reviews}],
     rateLimit: {requests: 10, per: 1s, global: true}}
  - {name: local, matches: [{path: {prefix: /local}}], destinations: [{service: reviews}],
     rateLimit: {requests: 10, per: 1s}}
  - {name: broken, matches: [{path: {prefix: /broken}}], destinations: [{service: reviews}],
     fault: {abort: {status: 503, percent: 50}}}
  - {name: rest, matches: [{path: {prefix: /}}], destinations: [{service: reviews}]}
"""
WEB = ProxyIdentity("sidecar", "default", "web-1")
REVIEWS = ProxyIdentity("sidecar", "default", "reviews-1")
SERVICE = grl.RateLimitService("127.0.0.1", 18081)


def snapshot() -> ModelSnapshot:
    return shop().with_changes(parse_yaml(RULES, "rules.yaml"))


def test_every_hcm_has_the_on_demand_filters_off() -> None:
    snap = snapshot()
    for proxy in (WEB, REVIEWS):
        res = Translator(SERVICE).proxy(snap, proxy)
        for name, listener in res.listeners.items():
            if listener.filter_chains[0].filters[-1].name != (
                "envoy.filters.network.http_connection_manager"
            ):
                continue
            filters = {f.name.split("|")[0]: f for f in hcm_of(listener).http_filters}
            assert filters[grl.GLOBAL_RATE_LIMIT_FILTER].disabled, name
            assert filters[FAULT_FILTER].disabled, name
            assert not filters[LOCAL_RATE_LIMIT_FILTER].disabled, name


def test_routes_turn_on_what_their_rule_uses_and_nothing_else() -> None:
    res = Translator(SERVICE).proxy(snapshot(), WEB)
    [vh] = res.routes["outbound|default/reviews|http"].virtual_hosts
    on = {r.match.prefix: set(r.typed_per_filter_config) for r in vh.routes}
    assert on["/limited"] == {grl.GLOBAL_RATE_LIMIT_FILTER}
    assert on["/broken"] == {FAULT_FILTER}
    assert on["/local"] == set()
    assert on["/"] == set()
