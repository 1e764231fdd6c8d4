"""The local rate limit's buckets as ECDS resources: every HCM of every proxy names one that
its proxy's snapshot holds, and a budget change (added, changed or removed) changes only
that resource: listeners and routes stay the same."""

from __future__ import annotations

from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2
from traffic_rules import shop_with_rules
from translate_helpers import hcm_of, network_filter, proxies

from gossamer.model import parse_yaml
from gossamer.translate.jwt import JWT_FILTER
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.rate_limit import LOCAL_RATE_LIMIT_FILTER
from gossamer.types import ProxyIdentity


def _discovered(res: ProxyResources) -> set[str]:
    """The filter configs the proxy's HCMs discover over ECDS."""
    return {
        hf.name
        for listener in res.listeners.values()
        if network_filter(listener)[0] == "envoy.filters.network.http_connection_manager"
        for hf in hcm_of(listener).http_filters
        if hf.HasField("config_discovery")
    }


def test_every_discovered_filter_config_is_in_the_snapshot() -> None:
    snap = shop_with_rules()
    translator = Translator()
    seen = 0
    for ident in proxies(snap):
        res = translator.proxy(snap, ident)
        wanted = _discovered(res)
        seen += len(wanted)
        assert wanted == set(res.extension_configs), ident.node_id
        for name in wanted - {JWT_FILTER}:  # (the inbound token check's, translate.jwt)
            assert name.startswith(LOCAL_RATE_LIMIT_FILTER + "|")
            config = res.extension_configs[name]
            assert config.name == name
            assert config.typed_config.Is(local_rate_limit_pb2.LocalRateLimit.DESCRIPTOR)
    assert seen > 5


def _with_budget(requests: int | None) -> str:
    limit = f"\n    rateLimit: {{requests: {requests}, per: 1m}}" if requests else ""
    return f"""
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: reviews}}
spec:
  service: reviews
  rules:
  - name: api
    matches: [{{path: {{prefix: /api/v1}}}}]
    destinations: [{{service: reviews}}]
    rateLimit: {{requests: 100, per: 1m}}
  - name: items
    matches: [{{path: {{prefix: /items}}}}]
    destinations: [{{service: reviews}}]{limit}
"""


def test_a_budget_change_changes_only_the_filter_config() -> None:
    base = shop_with_rules()
    translator = Translator()
    web1 = ProxyIdentity("sidecar", "default", "web-1")
    versions = [
        translator.proxy(base.with_changes(parse_yaml(_with_budget(n), "r.yaml")), web1)
        for n in (5, 7, None)  # a budget, changed, removed
    ]
    first = versions[0]
    for later in versions[1:]:
        assert later.listeners == first.listeners
        assert later.extension_configs != first.extension_configs
    # Changed: the same routes (they emit the rule's descriptor, not its budget).
    assert versions[1].routes == first.routes
    # An unchanged budget is the same object (serialised once).
    again = translator.proxy(base.with_changes(parse_yaml(_with_budget(5), "r.yaml")), web1)
    for name, config in again.extension_configs.items():
        assert config is first.extension_configs[name]
