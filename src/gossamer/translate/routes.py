"""Route tables: Route resources' rules as Envoy virtual hosts and routes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta

from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import (
    previous_priorities_config_pb2 as previous_priorities_pb2,
)
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import wrappers_pb2

from gossamer.model.mesh import Mesh
from gossamer.model.route import Destination, HeaderMatch, Match, Retries, Route, Rule
from gossamer.model.route_actions import MAX_DIRECT_BODY_BYTES, Mirror
from gossamer.translate import filters, global_rate_limit, rate_limit, rule_parts
from gossamer.translate.common import any_of, duration
from gossamer.translate.rule_parts import regex as _regex

#: (destination or mirror, rule's namespace) -> (cluster name, is the port gRPC); a
#: destination with a subset has a cluster of its own (``names.outbound_cluster``)
ClusterOf = Callable[[Destination | Mirror, str], tuple[str, bool]]


def _header(h: HeaderMatch) -> rc_pb2.HeaderMatcher:
    out = rc_pb2.HeaderMatcher(name=h.name.lower(), invert_match=h.invert)
    if h.present is not None:
        out.present_match = h.present
    elif h.exact is not None:
        out.string_match.CopyFrom(string_pb2.StringMatcher(exact=h.exact))
    elif h.prefix is not None:
        out.string_match.CopyFrom(string_pb2.StringMatcher(prefix=h.prefix))
    elif h.regex is not None:
        out.string_match.CopyFrom(string_pb2.StringMatcher(safe_regex=_regex(h.regex)))
    return out


def _match(m: Match) -> rc_pb2.RouteMatch:
    out = rc_pb2.RouteMatch(
        headers=[_header(h) for h in m.headers],
        query_parameters=[rule_parts.query_param(q) for q in m.queryParams],
    )
    if m.path.exact is not None:
        out.path = m.path.exact
    elif m.path.prefix is not None:
        out.prefix = m.path.prefix
    elif m.path.regex is not None:
        out.safe_regex.CopyFrom(_regex(m.path.regex))
    if m.method is not None:
        out.headers.append(
            rc_pb2.HeaderMatcher(
                name=":method", string_match=string_pb2.StringMatcher(exact=m.method)
            )
        )
    return out


def _action(rule: Rule, namespace: str, cluster_of: ClusterOf, mesh: Mesh) -> rc_pb2.RouteAction:
    action = rc_pb2.RouteAction()
    assert rule.destinations is not None
    live = [d for d in rule.destinations if d.weight > 0]
    grpc = False
    if len(live) == 1:
        name, grpc = cluster_of(live[0], namespace)
        action.cluster = name
    else:
        for d in live:
            name, is_grpc = cluster_of(d, namespace)
            grpc = grpc or is_grpc
            action.weighted_clusters.clusters.add(
                name=name, weight=wrappers_pb2.UInt32Value(value=d.weight)
            )
    timeout = _timeout(rule, grpc, mesh)
    action.timeout.CopyFrom(duration(timeout))
    if grpc:
        honour_grpc_deadline(action, timeout)
    retries = rule.retries if rule.retries is not None else mesh.spec.defaults.retries
    if retries.attempts > 0:
        action.retry_policy.CopyFrom(retry_policy(retries))
    rule_parts.apply_rewrite(action, rule.rewrite)
    if rule.mirror is not None:
        action.request_mirror_policies.append(
            rule_parts.mirror_policy(rule.mirror, lambda m: cluster_of(m, namespace)[0])
        )
    return action


def honour_grpc_deadline(action: rc_pb2.RouteAction, timeout: timedelta) -> None:
    """A gRPC call ends at the mesh at its client's deadline (``grpc-timeout``) or at the
    route's ``timeout``, whichever comes first (``0``: no timeout, the deadline alone).

    Setting ``max_stream_duration`` switches Envoy to its newer timeouts for the route, which
    ignore ``timeout`` for every request: so only routes to gRPC ports carry it, with the
    route's timeout both as the stream's limit (a call without a deadline) and as the cap on
    the client's deadline. Other routes keep ``timeout`` (HTTP requests, and gRPC on an
    ``http2`` port, whose client still gives up at its own deadline).
    """
    action.max_stream_duration.grpc_timeout_header_max.CopyFrom(duration(timeout))
    if timeout > timedelta(0):
        action.max_stream_duration.max_stream_duration.CopyFrom(duration(timeout))


def _timeout(rule: Rule, grpc: bool, mesh: Mesh) -> timedelta:
    """The rule's timeout; else none for gRPC (streams may be long) and the mesh default."""
    if rule.timeout is not None:
        return rule.timeout
    return timedelta(0) if grpc else mesh.spec.defaults.requestTimeout


def _route(
    rule: Rule, namespace: str, rule_id: str, cluster_of: ClusterOf, mesh: Mesh
) -> rc_pb2.Route:
    """One Envoy route for ``rule`` without its match (each match copies it)."""
    global_limit = rule.rateLimit is not None and rule.rateLimit.global_
    out = rc_pb2.Route(
        typed_per_filter_config=filters.per_route(rule.fault, global_limit=global_limit)
    )
    if rule.redirect is not None:
        out.redirect.CopyFrom(rule_parts.redirect_action(rule.redirect))
    elif rule.directResponse is not None:
        out.direct_response.CopyFrom(rule_parts.direct_response(rule.directResponse))
    else:
        out.route.CopyFrom(_action(rule, namespace, cluster_of, mesh))
    if rule.rateLimit is not None:
        # Only a forwarding rule has a RouteAction to emit its descriptor (the model
        # refuses rateLimit on redirects and direct responses).
        limit = rule.rateLimit
        out.route.rate_limits.append(
            global_rate_limit.route_rate_limit(rule_id, limit.key)
            if limit.global_
            else rate_limit.route_rate_limit(rule_id)
        )
    rule_parts.apply_headers(out, rule.headers)
    return out


def routes_for_rules(
    rules: Iterable[tuple[Rule, str, str]], cluster_of: ClusterOf, mesh: Mesh
) -> list[rc_pb2.Route]:
    """Envoy routes for (rule, namespace of its Route, rule id) triples, first match wins;
    the rule id names a rate-limited rule's bucket (``rate_limit.rule_id``)."""
    out: list[rc_pb2.Route] = []
    for rule, namespace, rule_id in rules:
        route = _route(rule, namespace, rule_id, cluster_of, mesh)
        for m in rule.matches:
            one = rc_pb2.Route()
            one.CopyFrom(route)
            one.match.CopyFrom(_match(m))
            out.append(one)
    return out


def retry_policy(retries: Retries) -> rc_pb2.RetryPolicy:
    """Retries that try another host each time (never the one that just failed), in
    another priority (zone, ``translate.locality``) when there is one: a dead zone is left
    at the first retry rather than tried again while its health reaches EDS."""
    policy = rc_pb2.RetryPolicy(
        retry_on=",".join(retries.retryOn),
        num_retries=wrappers_pb2.UInt32Value(value=retries.attempts),
        retriable_status_codes=retries.statusCodes,
        host_selection_retry_max_attempts=5,
    )
    policy.retry_host_predicate.add(
        name="envoy.retry_host_predicates.previous_hosts",
        typed_config=any_of(previous_hosts_pb2.PreviousHostsPredicate()),
    )
    policy.retry_priority.name = "envoy.retry_priorities.previous_priorities"
    policy.retry_priority.typed_config.CopyFrom(
        any_of(previous_priorities_pb2.PreviousPrioritiesConfig(update_frequency=1))
    )
    if retries.perTryTimeout is not None:
        policy.per_try_timeout.CopyFrom(duration(retries.perTryTimeout))
    return policy


def default_route(
    cluster: str, timeout: timedelta | None, *, grpc: bool, retries: Retries | None = None
) -> rc_pb2.Route:
    """Everything not matched by a rule goes to ``cluster``; a ``None`` timeout is none.
    A caller's route to a gRPC port ends calls at their deadline; a sidecar's inbound route
    leaves that to the caller's."""
    action = rc_pb2.RouteAction(cluster=cluster, timeout=duration(timeout or timedelta(0)))
    if retries is not None and retries.attempts > 0:
        action.retry_policy.CopyFrom(retry_policy(retries))
    if grpc:
        honour_grpc_deadline(action, timeout or timedelta(0))
    return rc_pb2.Route(match=rc_pb2.RouteMatch(prefix="/"), route=action)


def cluster_references(table: route_pb2.RouteConfiguration) -> frozenset[str]:
    """Every cluster ``table``'s routes send to, split to or mirror to."""
    return route_references(route for vh in table.virtual_hosts for route in vh.routes)


def route_references(routes: Iterable[rc_pb2.Route]) -> frozenset[str]:
    """Every cluster ``routes`` send to, split to or mirror to."""
    out: set[str] = set()
    for route in routes:
        action = route.route
        if action.cluster:
            out.add(action.cluster)
        out.update(c.name for c in action.weighted_clusters.clusters)
        out.update(m.cluster for m in action.request_mirror_policies)
    return frozenset(out)


def route_configuration(
    name: str, virtual_hosts: Sequence[tuple[str, list[str], list[rc_pb2.Route]]]
) -> route_pb2.RouteConfiguration:
    """A route table of (virtual host name, domains, routes)."""
    return route_pb2.RouteConfiguration(
        name=name,
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        max_direct_response_body_size_bytes=wrappers_pb2.UInt32Value(value=MAX_DIRECT_BODY_BYTES),
        virtual_hosts=[
            rc_pb2.VirtualHost(name=vh, domains=domains, routes=routes)
            for vh, domains, routes in virtual_hosts
        ],
    )


def rule_entries(routes: Iterable[Route]) -> list[tuple[Rule, str, str]]:
    """(rule, namespace, rule id) of every rule of ``routes``, in order."""
    return [
        (rule, r.metadata.namespace, rate_limit.rule_id(r, i, rule))
        for r in routes
        for i, rule in enumerate(r.spec.rules)
    ]


def inbound_routes(name: str, cluster: str) -> route_pb2.RouteConfiguration:
    """A sidecar's inbound table: everything to its local app, no timeout of its own (the
    caller's route bounds the request)."""
    return route_configuration(name, [(name, ["*"], [default_route(cluster, None, grpc=False)])])
