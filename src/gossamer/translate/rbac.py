"""The NGAC graph compiled into Envoy RBAC, per route, at a sidecar's inbound (docs/ngac.md,
"Enforcement in Envoy").

Every inbound HCM holds the ``envoy.filters.http.rbac`` filter from the start, with an
empty config (no policy: everything passes). A service whose authorization mode is
``enforce`` or ``audit`` gets, in its inbound route table (RDS, ``inbound|PORT``), one route
per path prefix attribute (``path_separated_prefix``, deepest first) and the catch-all
``/`` for the service's own attribute, each with its access list as ``RBACPerRoute``. A
policy change is then a route table push: no listener changes, no connection drains, and an
open keep-alive connection's next request meets the new list.

The list is an RBAC ``matcher``: an exact-match map on the peer certificate's URI SAN (the
caller's SPIFFE id; the inbound's network RBAC already requires exactly one), then per
caller an exact-match map on ``:method``; anything else hits ``on_no_match``, deny. Two hash
lookups per request, whatever the number of callers. ``enforce`` sets ``matcher`` (a denial
is a 403, ``rbac.denied``); ``audit`` sets ``shadow_matcher`` (allowed, counted as
``rbac.shadow_denied``). Action names are the deciding attribute's name, so a denial's
``%RESPONSE_CODE_DETAILS%`` reads ``rbac_access_denied_matched_policy[svc:ns/name:/prefix]``.
"""

from __future__ import annotations

from envoy.config.rbac.v3 import rbac_pb2 as rbac_config_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.matching.common_inputs.ssl.v3 import ssl_inputs_pb2
from envoy.type.matcher.v3 import http_inputs_pb2
from google.protobuf import any_pb2
from xds.core.v3 import extension_pb2
from xds.type.matcher.v3 import matcher_pb2

from gossamer.authz.mesh_names import prefix_target, service_target
from gossamer.authz.service_access import AccessState, Grants, PrefixAccess, ServiceAccess
from gossamer.model.authorization import AuthorizationMode
from gossamer.model.service import Service
from gossamer.model.snapshot import ModelSnapshot
from gossamer.translate.common import any_of
from gossamer.translate.memo import Memo

RBAC_FILTER = "envoy.filters.http.rbac"
URI_SAN_INPUT = "envoy.matching.inputs.uri_san"
METHOD_INPUT = "envoy.matching.inputs.request_headers"
RBAC_ACTION = "envoy.filters.rbac.action"

_ALLOW = rbac_config_pb2.RBAC.ALLOW
_DENY = rbac_config_pb2.RBAC.DENY


def http_filter() -> hcm_pb2.HttpFilter:
    """The inbound HCM's RBAC filter: no policy at the HCM (routes carry theirs)."""
    return hcm_pb2.HttpFilter(name=RBAC_FILTER, typed_config=any_of(rbac_pb2.RBAC()))


def _action(name: str, action: int) -> matcher_pb2.Matcher.OnMatch:
    return matcher_pb2.Matcher.OnMatch(
        action=extension_pb2.TypedExtensionConfig(
            name=RBAC_ACTION,
            typed_config=any_of(rbac_config_pb2.Action(name=name, action=action)),
        )
    )


def _input(name: str, config: any_pb2.Any) -> extension_pb2.TypedExtensionConfig:
    return extension_pb2.TypedExtensionConfig(name=name, typed_config=config)


def matcher(grants: Grants, target: str) -> matcher_pb2.Matcher:
    """Allow exactly the (caller, method) pairs of ``grants``; deny the rest. Actions are
    named ``target`` (the attribute that decides)."""
    by_caller = matcher_pb2.Matcher.MatcherTree.MatchMap()
    method_input = _input(
        METHOD_INPUT, any_of(http_inputs_pb2.HttpRequestHeaderMatchInput(header_name=":method"))
    )
    allow, deny = _action(target, _ALLOW), _action(target, _DENY)
    # callers holding the same methods share one sub-matcher, built once (hundreds of
    # callers per list, a handful of method sets: the translation of a list is the copies)
    shared: dict[tuple[str, ...], matcher_pb2.Matcher.OnMatch] = {}
    for user, methods in grants:
        on_match = shared.get(methods)
        if on_match is None:
            per_method = matcher_pb2.Matcher.MatcherTree.MatchMap()
            for m in methods:
                per_method.map[m].CopyFrom(allow)
            on_match = shared[methods] = matcher_pb2.Matcher.OnMatch(
                matcher=matcher_pb2.Matcher(
                    matcher_tree=matcher_pb2.Matcher.MatcherTree(
                        input=method_input, exact_match_map=per_method
                    ),
                    on_no_match=deny,
                )
            )
        by_caller.map[user].CopyFrom(on_match)
    out = matcher_pb2.Matcher(on_no_match=deny)
    if grants:
        out.matcher_tree.CopyFrom(
            matcher_pb2.Matcher.MatcherTree(
                input=_input(URI_SAN_INPUT, any_of(ssl_inputs_pb2.UriSanInput())),
                exact_match_map=by_caller,
            )
        )
    return out


def per_route(mode: AuthorizationMode, grants: Grants, target: str) -> rbac_pb2.RBACPerRoute:
    """A route's RBAC in ``mode`` (``enforce`` or ``audit``)."""
    m = matcher(grants, target)
    rbac = rbac_pb2.RBAC(matcher=m) if mode == "enforce" else rbac_pb2.RBAC(shadow_matcher=m)
    return rbac_pb2.RBACPerRoute(rbac=rbac)


def _target(service: tuple[str, str], p: PrefixAccess) -> str:
    if p.prefix is None:
        return service_target(*service)
    return prefix_target(*service, p.prefix)


def enforced_routes(
    table: route_pb2.RouteConfiguration, mode: AuthorizationMode, access: ServiceAccess
) -> route_pb2.RouteConfiguration:
    """``table`` (a sidecar's inbound routes: one catch-all route) with one route per prefix
    attribute of ``access`` before it and each route's RBAC; ``table`` itself when ``mode``
    is ``off`` (it may be shared: never changed)."""
    if mode == "off":
        return table
    out = route_pb2.RouteConfiguration()
    out.CopyFrom(table)
    *prefixes, root = access.prefixes
    for vh in out.virtual_hosts:
        originals = [_copy(r) for r in vh.routes]
        routes: list[rc_pb2.Route] = []
        for p in prefixes:
            assert p.prefix is not None
            route = _copy(originals[-1])
            route.match.ClearField("path_specifier")
            route.match.path_separated_prefix = p.prefix
            routes.append(_guarded(route, mode, access, p))
        # every route the table had (its catch-all) is decided on the service's attribute
        routes += [_guarded(r, mode, access, root) for r in originals]
        del vh.routes[:]
        vh.routes.extend(routes)
    return out


def _copy(route: rc_pb2.Route) -> rc_pb2.Route:
    out = rc_pb2.Route()
    out.CopyFrom(route)
    return out


def _guarded(
    route: rc_pb2.Route, mode: AuthorizationMode, access: ServiceAccess, p: PrefixAccess
) -> rc_pb2.Route:
    config = per_route(mode, p.grants, _target(access.service, p))
    route.typed_per_filter_config[RBAC_FILTER].CopyFrom(any_of(config))
    return route


def inbound_table(
    memo: Memo,
    snap: ModelSnapshot,
    service: Service,
    table: route_pb2.RouteConfiguration,
    access: AccessState,
) -> route_pb2.RouteConfiguration:
    """``service``'s inbound ``table`` as its authorization mode and access lists say
    (memoised: an unchanged service's lists are the same object from round to round)."""
    mode = service.authorization_mode(snap.mesh.spec.authorization.mode)
    if mode == "off":
        return table
    lists = access.of(service.ref)
    return memo.get(
        "enforced-inbound", (table, mode, lists), lambda: enforced_routes(table, mode, lists)
    )
