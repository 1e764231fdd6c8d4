"""Proxies only see what they may call (``translate.scoping``): under ``enforce`` a caller's
sidecar holds clusters and routes for a dependency only if its identity holds some right on
the service; otherwise the same listener answers 403 from a one-route table, and no cluster
or endpoint set of the service is sent. ``audit`` and ``off`` scope nothing. A grant change
rebuilds the callers whose right came or went, and only them."""

from __future__ import annotations

import pytest
from envoy.config.listener.v3 import listener_pb2
from rbac_policies import POLICY, REVIEWS, WEB, engine_state, shop_with

from gossamer.authz.service_access import AccessState, ServiceAccessCompiler
from gossamer.controlplane.enforcement import check_tcp_enforcement, with_access_change
from gossamer.controlplane.incremental import EndpointChange
from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.scoping import DENIAL, denied_routes
from gossamer.types import ProxyIdentity

WEB_1 = ProxyIdentity("sidecar", "default", "web-1")
RATINGS, DB = ("default", "ratings"), ("default", "db")
REVIEWS_ROUTE = "outbound|default/reviews|http"
#: the policy with web in no user attribute: it holds nothing anywhere
NO_WEB = POLICY.replace(f'"{WEB}": [frontends], ', "")


def _access(text: str = POLICY) -> AccessState:
    compiler = ServiceAccessCompiler(engine_state(text).decider)
    return AccessState(compiler.compile_all([REVIEWS, RATINGS, DB, ("default", "web")]))


def _web(snap: ModelSnapshot, text: str = POLICY) -> ProxyResources:
    return Translator().proxy(snap, WEB_1, access=_access(text))


def _services(res: ProxyResources) -> set[str]:
    return {name.split("|")[1] for name in res.clusters if name.startswith("outbound|")}


def _bytes(listener: listener_pb2.Listener) -> bytes:
    return listener.SerializeToString(deterministic=True)


def test_enforce_keeps_only_what_the_caller_may_call() -> None:
    res = _web(shop_with("enforce"))
    # web may GET reviews and ratings (under apis); db has no attribute: nobody may call it
    assert _services(res) == {"default/reviews", "default/ratings"}
    assert not [n for n in res.endpoints if "default/db" in n]
    assert res.missing_references() == []
    # db's listener stays where the app expects it (its TCP proxy names no cluster it has)
    assert [n for n in res.listeners if n.endswith(":5432")]


def test_a_caller_granted_nothing_gets_a_403_table_and_the_same_listener() -> None:
    snap = shop_with("enforce")
    granted, denied = _web(snap), _web(snap, NO_WEB)
    assert _services(denied) == set()
    assert set(denied.endpoints) == {"local|default/web"}  # (its own service's)
    (vh,) = denied.routes[REVIEWS_ROUTE].virtual_hosts
    (route,) = vh.routes
    assert route.direct_response.status == 403
    body = route.direct_response.body.inline_string
    assert body.startswith(DENIAL) and WEB in body and "svc:default/reviews" in body
    # a grant or a revocation changes route tables and clusters, never a listener
    assert denied.listeners.keys() == granted.listeners.keys()
    for name, listener in granted.listeners.items():
        assert _bytes(denied.listeners[name]) == _bytes(listener), name
    assert denied.extension_configs.keys() == granted.extension_configs.keys()
    assert denied.routes[REVIEWS_ROUTE] == denied_routes(REVIEWS_ROUTE, WEB, REVIEWS)


def test_audit_and_off_scope_nothing() -> None:
    full = {"default/reviews", "default/ratings", "default/db"}
    assert _services(_web(shop_with("audit"), NO_WEB)) == full
    assert _services(_web(shop_with("off"), NO_WEB)) == full
    # a service's own mode counts: reviews audited in an enforcing mesh stays visible
    assert _services(_web(shop_with("enforce", service_mode="audit"), NO_WEB)) == {
        "default/reviews"
    }


def test_a_grant_change_rebuilds_the_callers_whose_right_came_or_went() -> None:
    model = shop_with("enforce")
    before, granted = _access(NO_WEB), _access()
    # as the plane keeps them: a service whose lists stayed equal keeps its object
    after = AccessState({**before.services, **{s: granted.of(s) for s in (REVIEWS, RATINGS)}})
    none = EndpointChange(frozenset(), frozenset())
    change = with_access_change(none, before, after, model)
    # reviews' and ratings' own sidecars (their lists changed) and web-1 (now a caller)
    callees = {w.ref for s in (REVIEWS, RATINGS) for w in model.workloads_of(s)}
    assert change.workloads == callees | {("default", "web-1")}
    back = with_access_change(none, after, before, model)
    assert ("default", "web-1") in back.workloads
    # under audit a grant rebuilds the callees (their shadow lists) but scopes no caller
    audit = shop_with("audit")
    assert ("default", "web-1") not in with_access_change(none, before, after, audit).workloads


@pytest.mark.asyncio
async def test_enforce_on_a_tcp_service_is_refused_naming_the_field() -> None:
    # the mesh enforces and db (TCP) sets no mode of its own: the Mesh's field is named
    errors = await check_tcp_enforcement(shop_with("enforce"))
    mesh_field = ("Mesh default/default", "spec.authorization.mode")
    assert [(e.resource, e.path) for e in errors] == [mesh_field]
    assert "default/db" in errors[0].message and "off" in errors[0].message
    # db's own mode decides for it: off is accepted, enforce is refused on db itself
    assert await check_tcp_enforcement(_db_mode(shop_with("enforce"), "off")) == []
    errors = await check_tcp_enforcement(_db_mode(shop_with("off"), "enforce"))
    assert [(e.resource, e.path) for e in errors] == [
        ("Service default/db", "spec.authorization.mode")
    ]
    assert await check_tcp_enforcement(shop_with("audit")) == []


def _db_mode(snap: ModelSnapshot, mode: str) -> ModelSnapshot:
    text = f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: db}}
spec: {{ports: [{{name: tcp, port: 5432, protocol: tcp}}], authorization: {{mode: {mode}}}}}
"""
    return snap.with_changes(parse_yaml(text, "db.yaml"))
