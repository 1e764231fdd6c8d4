"""Route-level pieces of a rule: query matches, rewrites, header changes, redirects, direct
responses and mirrors, each as the Envoy field that carries it in RDS."""

from __future__ import annotations

from collections.abc import Callable

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from gossamer.model.route import QueryParamMatch
from gossamer.model.route_actions import (
    DirectResponse,
    HeaderChanges,
    Headers,
    Mirror,
    Redirect,
    Rewrite,
)
from gossamer.translate.filters import fraction

_ACTION = base_pb2.HeaderValueOption.HeaderAppendAction
_CODES = {
    301: rc_pb2.RedirectAction.MOVED_PERMANENTLY,
    302: rc_pb2.RedirectAction.FOUND,
    303: rc_pb2.RedirectAction.SEE_OTHER,
    307: rc_pb2.RedirectAction.TEMPORARY_REDIRECT,
    308: rc_pb2.RedirectAction.PERMANENT_REDIRECT,
}


def regex(pattern: str) -> regex_pb2.RegexMatcher:
    # RE2 is the only (default) engine; the ``google_re2`` field is deprecated.
    return regex_pb2.RegexMatcher(regex=pattern)


def query_param(q: QueryParamMatch) -> rc_pb2.QueryParameterMatcher:
    out = rc_pb2.QueryParameterMatcher(name=q.name)
    if q.present:
        out.present_match = True
    elif q.exact is not None:
        out.string_match.CopyFrom(string_pb2.StringMatcher(exact=q.exact))
    elif q.regex is not None:
        out.string_match.CopyFrom(string_pb2.StringMatcher(safe_regex=regex(q.regex)))
    return out


def apply_rewrite(action: rc_pb2.RouteAction, rewrite: Rewrite | None) -> None:
    if rewrite is None:
        return
    if rewrite.prefix is not None:
        action.prefix_rewrite = rewrite.prefix
    if rewrite.regex is not None:
        action.regex_rewrite.CopyFrom(
            regex_pb2.RegexMatchAndSubstitute(
                pattern=regex(rewrite.regex.pattern), substitution=rewrite.regex.substitution
            )
        )
    if rewrite.host is not None:
        action.host_rewrite_literal = rewrite.host


def _literal(value: str) -> str:
    # Envoy reads header values as format strings (``%REQ(x)%``); ours are literal.
    return value.replace("%", "%%")


def _options(changes: HeaderChanges) -> list[base_pb2.HeaderValueOption]:
    out = [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=k, value=_literal(v)),
            append_action=_ACTION.OVERWRITE_IF_EXISTS_OR_ADD,
        )
        for k, v in sorted(changes.set.items())
    ]
    out += [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=k, value=_literal(v)),
            append_action=_ACTION.APPEND_IF_EXISTS_OR_ADD,
        )
        for k, v in sorted(changes.add.items())
    ]
    return out


def apply_headers(route: rc_pb2.Route, headers: Headers | None) -> None:
    """Header changes on the route: applied to forwarded requests and to every response
    (the destination's, a redirect's or a direct response)."""
    if headers is None:
        return
    if headers.request is not None:
        route.request_headers_to_add.extend(_options(headers.request))
        route.request_headers_to_remove.extend(headers.request.remove)
    if headers.response is not None:
        route.response_headers_to_add.extend(_options(headers.response))
        route.response_headers_to_remove.extend(headers.response.remove)


def redirect_action(r: Redirect) -> rc_pb2.RedirectAction:
    out = rc_pb2.RedirectAction(response_code=_CODES[r.status])
    if r.prefix is not None:
        out.prefix_rewrite = r.prefix
    if r.path is not None:
        out.path_redirect = r.path
    if r.scheme is not None:
        out.scheme_redirect = r.scheme
    if r.host is not None:
        out.host_redirect = r.host
    if r.port is not None:
        out.port_redirect = r.port
    return out


def direct_response(d: DirectResponse) -> rc_pb2.DirectResponseAction:
    out = rc_pb2.DirectResponseAction(status=d.status)
    if d.body:
        out.body.inline_string = d.body
    return out


def mirror_policy(
    m: Mirror, cluster_of: Callable[[Mirror], str]
) -> rc_pb2.RouteAction.RequestMirrorPolicy:
    """Copy ``m.percent`` of requests to ``m``'s cluster, fire and forget. Envoy adds
    ``-shadow`` to the copy's Host, so the shadow can tell copies apart."""
    policy = rc_pb2.RouteAction.RequestMirrorPolicy(cluster=cluster_of(m))
    if m.percent < 100:
        policy.runtime_fraction.default_value.CopyFrom(fraction(m.percent))
    return policy
