"""The NGAC graph compiled into per-route RBAC at a sidecar's inbound (``translate.rbac``):
the filter is in every inbound HCM in every mode, ``off`` leaves the route table as it was,
``enforce``/``audit`` add one route per prefix attribute (deepest first) each with its
access list as a URI-SAN -> method matcher, and the compiled lists are what the engine
decides."""

from __future__ import annotations

import pytest
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2
from rbac_policies import CRON, OTHER, REVIEWS, WEB, engine_state, shop_with
from shop import shop
from translate_helpers import hcm_of

from gossamer.authz.service_access import AccessState, ServiceAccessCompiler
from gossamer.envoy.validate import validate_config_sync
from gossamer.model import ModelSnapshot
from gossamer.testing.rbac_eval import evaluate
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.rbac import RBAC_FILTER
from gossamer.types import ProxyIdentity

REVIEWS_1 = ProxyIdentity("sidecar", "default", "reviews-1")


def _access() -> AccessState:
    state = engine_state()
    compiler = ServiceAccessCompiler(state.decider)
    return AccessState(compiler.compile_all([REVIEWS, ("default", "ratings")]))


def _reviews(snap: ModelSnapshot, access: AccessState | None = None) -> ProxyResources:
    return Translator().proxy(snap, REVIEWS_1, access=access or _access())


def _table(res: ProxyResources) -> route_pb2.RouteConfiguration:
    return res.routes["inbound|http"]


def test_off_is_the_default_and_keeps_the_table_but_the_filter_is_there() -> None:
    snap = shop_with("off")
    assert shop().mesh.spec.authorization.mode == "off"
    res = _reviews(snap)
    hcm = hcm_of(res.listeners["inbound|http"])
    assert hcm.http_filters[0].name == RBAC_FILTER
    assert hcm.http_filters[0].typed_config.Unpack(empty := rbac_pb2.RBAC())
    assert not empty.HasField("matcher") and not empty.HasField("shadow_matcher")
    (vh,) = _table(res).virtual_hosts
    assert [r.match.prefix for r in vh.routes] == ["/"]
    assert not vh.routes[0].typed_per_filter_config
    assert evaluate(_table(res), OTHER, "DELETE", "/admin").outcome == "allow"


def test_the_listener_is_the_same_in_every_mode() -> None:
    listeners = {
        mode: _reviews(shop_with(mode))
        .listeners["inbound|http"]
        .SerializeToString(deterministic=True)
        for mode in ("off", "audit", "enforce")
    }
    assert len(set(listeners.values())) == 1


def test_enforce_routes_one_prefix_each_deepest_first() -> None:
    table = _table(_reviews(shop_with("enforce")))
    (vh,) = table.virtual_hosts
    matches = [r.match.path_separated_prefix or r.match.prefix for r in vh.routes]
    assert matches == ["/api/orders", "/admin", "/api", "/"]
    cluster = {r.route.cluster for r in vh.routes}
    assert cluster == {"inbound|http"}
    for r in vh.routes:
        per_route = rbac_pb2.RBACPerRoute()
        assert r.typed_per_filter_config[RBAC_FILTER].Unpack(per_route)
        assert per_route.rbac.HasField("matcher")
        assert not per_route.rbac.HasField("shadow_matcher")


def test_enforce_decides_as_the_policy_says() -> None:
    table = _table(_reviews(shop_with("enforce")))
    cases = [
        (WEB, "GET", "/", "allow"),
        (WEB, "GET", "/api/orders/7?x=1", "allow"),
        (WEB, "POST", "/api/orders", "deny"),  # method outside the grant
        (WEB, "GET", "/admin", "deny"),  # prohibition
        (WEB, "GET", "/admin/users", "deny"),
        (WEB, "GET", "/admin-panel", "allow"),  # segment-aware: not under /admin
        (CRON, "DELETE", "/api/orders/7", "allow"),  # *r
        (CRON, "GET", "/api/orders-admin", "deny"),  # not under /api/orders
        (CRON, "GET", "/api", "deny"),
        (OTHER, "GET", "/", "deny"),  # no grant
        (None, "GET", "/", "deny"),  # plaintext: no identity
        ("ops-person", "GET", "/", "deny"),  # not a SPIFFE id: not compiled
    ]
    for peer, method, path, outcome in cases:
        got = evaluate(table, peer, method, path)
        assert got.outcome == outcome, (peer, method, path, got)
    denied = evaluate(table, WEB, "GET", "/admin/x")
    assert denied.policy == "svc:default/reviews:/admin"


def test_audit_allows_and_shadows() -> None:
    table = _table(_reviews(shop_with("audit")))
    got = evaluate(table, WEB, "GET", "/admin")
    assert (got.outcome, got.shadow) == ("allow", "deny")
    got = evaluate(table, WEB, "GET", "/")
    assert (got.outcome, got.shadow) == ("allow", "allow")


def test_a_service_mode_overrides_the_mesh() -> None:
    table = _table(_reviews(shop_with("off", service_mode="enforce")))
    assert evaluate(table, OTHER, "GET", "/").outcome == "deny"
    table = _table(_reviews(shop_with("enforce", service_mode="off")))
    assert evaluate(table, OTHER, "GET", "/").outcome == "allow"


def test_a_service_without_an_attribute_denies_everyone() -> None:
    # enforce, and nothing in the graph (or no engine yet): fail closed
    table = _table(_reviews(shop_with("enforce"), AccessState()))
    assert evaluate(table, WEB, "GET", "/").outcome == "deny"


def test_a_caller_granted_nothing_is_not_in_the_map() -> None:
    access = _access()
    root = access.of(REVIEWS).prefixes[-1]
    assert root.prefix is None
    assert dict(root.grants) == {WEB: ("GET",)}  # not cron, not ops-person


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["enforce", "audit"])
def test_the_sidecar_config_passes_envoy_validate(mode: str) -> None:
    # (the TLS chain needs the certificates over SDS, so this is the plaintext inbound: the
    # matcher on the URI SAN is the same; tests/integration/ngac runs it with mTLS)
    res = _reviews(shop_with(mode))
    bootstrap = static_bootstrap(
        listeners=res.listeners.values(),
        clusters=res.clusters.values(),
        endpoints=res.endpoints.values(),
        routes=res.routes.values(),
        node=REVIEWS_1,
        extension_configs=res.extension_configs.values(),
    )
    validate_config_sync(bootstrap, timeout_s=120.0)
