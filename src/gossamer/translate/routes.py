"""Route tables: Route resources' rules as Envoy virtual hosts and routes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta

from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import wrappers_pb2

from gossamer.model.mesh import Mesh
from gossamer.model.route import Destination, HeaderMatch, Match, Retries, Rule
from gossamer.translate.common import any_of, duration

#: (destination, rule's namespace) -> (cluster name, is the destination port gRPC); a
#: destination with a subset has a cluster of its own (``names.outbound_cluster``)
ClusterOf = Callable[[Destination, str], tuple[str, bool]]


def _regex(pattern: str) -> regex_pb2.RegexMatcher:
    # RE2 is the only (default) engine; the ``google_re2`` field is deprecated.
    return regex_pb2.RegexMatcher(regex=pattern)


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
    out = rc_pb2.RouteMatch(headers=[_header(h) for h in m.headers])
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
    action.timeout.CopyFrom(duration(_timeout(rule, grpc, mesh)))
    if grpc:
        # gRPC deadlines travel in the grpc-timeout header; honour it (0: no cap).
        action.max_stream_duration.grpc_timeout_header_max.CopyFrom(duration(timedelta(0)))
    retries = rule.retries if rule.retries is not None else mesh.spec.defaults.retries
    if retries.attempts > 0:
        action.retry_policy.CopyFrom(retry_policy(retries))
    return action


def _timeout(rule: Rule, grpc: bool, mesh: Mesh) -> timedelta:
    """The rule's timeout; else none for gRPC (streams may be long) and the mesh default."""
    if rule.timeout is not None:
        return rule.timeout
    return timedelta(0) if grpc else mesh.spec.defaults.requestTimeout


def routes_for_rules(
    rules: Iterable[tuple[Rule, str]], cluster_of: ClusterOf, mesh: Mesh
) -> list[rc_pb2.Route]:
    """Envoy routes for (rule, namespace of its Route) pairs, first match wins."""
    out: list[rc_pb2.Route] = []
    for rule, namespace in rules:
        action = _action(rule, namespace, cluster_of, mesh)
        for m in rule.matches:
            out.append(rc_pb2.Route(match=_match(m), route=action))
    return out


def retry_policy(retries: Retries) -> rc_pb2.RetryPolicy:
    """Retries that try another host each time (never the one that just failed)."""
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
    if retries.perTryTimeout is not None:
        policy.per_try_timeout.CopyFrom(duration(retries.perTryTimeout))
    return policy


def default_route(
    cluster: str, timeout: timedelta | None, *, grpc: bool, retries: Retries | None = None
) -> rc_pb2.Route:
    """Everything not matched by a rule goes to ``cluster``; a ``None`` timeout is none."""
    action = rc_pb2.RouteAction(cluster=cluster, timeout=duration(timeout or timedelta(0)))
    if retries is not None and retries.attempts > 0:
        action.retry_policy.CopyFrom(retry_policy(retries))
    if grpc:
        action.max_stream_duration.grpc_timeout_header_max.CopyFrom(duration(timedelta(0)))
    return rc_pb2.Route(match=rc_pb2.RouteMatch(prefix="/"), route=action)


def route_configuration(
    name: str, virtual_hosts: Sequence[tuple[str, list[str], list[rc_pb2.Route]]]
) -> route_pb2.RouteConfiguration:
    """A route table of (virtual host name, domains, routes)."""
    return route_pb2.RouteConfiguration(
        name=name,
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        virtual_hosts=[
            rc_pb2.VirtualHost(name=vh, domains=domains, routes=routes)
            for vh, domains, routes in virtual_hosts
        ],
    )
