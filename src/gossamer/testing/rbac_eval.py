"""A pure-Python reading of a compiled inbound route table (``translate.rbac``): which route
a request takes and what its RBAC matcher decides. Tests compare it with Envoy on a sample
of requests and with the engine on many (the compiled config is what is evaluated, not the
access lists it came from).

It understands what the compiler emits and nothing more: ``prefix`` and
``path_separated_prefix`` route matches, ``RBACPerRoute`` with a ``matcher`` or
``shadow_matcher`` made of exact-match maps over the peer's URI SAN and ``:method``.
Anything else raises, so a compiler change that this reading does not follow fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from envoy.config.rbac.v3 import rbac_pb2 as rbac_config_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2
from envoy.extensions.matching.common_inputs.ssl.v3 import ssl_inputs_pb2
from envoy.type.matcher.v3 import http_inputs_pb2
from xds.type.matcher.v3 import matcher_pb2

from gossamer.authz.mesh_names import covers, path_of
from gossamer.translate.rbac import RBAC_FILTER

Outcome = Literal["allow", "deny"]


@dataclass(frozen=True)
class Evaluation:
    #: what the client meets: ``deny`` is a 403
    outcome: Outcome
    #: what the shadow matcher decided (audit), or None
    shadow: Outcome | None
    #: the deciding action's name (the attribute), or None without RBAC
    policy: str | None


def _route(table: route_pb2.RouteConfiguration, path: str) -> rc_pb2.Route:
    (vh,) = table.virtual_hosts
    for route in vh.routes:
        match = route.match
        which = match.WhichOneof("path_specifier")
        if which == "prefix" and path.startswith(match.prefix):
            return route
        if which == "path_separated_prefix" and covers(match.path_separated_prefix, path):
            return route
        if which not in ("prefix", "path_separated_prefix"):
            raise ValueError(f"route match {which} is not read here")
    raise LookupError(f"no route for {path}")


def _run(m: matcher_pb2.Matcher, peer: str | None, method: str) -> tuple[Outcome, str]:
    while True:
        on_match = m.on_no_match
        if m.HasField("matcher_tree"):
            tree = m.matcher_tree
            config = tree.input.typed_config
            if config.Is(ssl_inputs_pb2.UriSanInput.DESCRIPTOR):
                key = peer
            elif config.Is(http_inputs_pb2.HttpRequestHeaderMatchInput.DESCRIPTOR):
                header = http_inputs_pb2.HttpRequestHeaderMatchInput()
                config.Unpack(header)
                if header.header_name != ":method":
                    raise ValueError(f"input header {header.header_name} is not read here")
                key = method
            else:
                raise ValueError(f"matcher input {config.type_url} is not read here")
            if not tree.HasField("exact_match_map"):
                raise ValueError("only exact_match_map is read here")
            if key is not None and key in tree.exact_match_map.map:
                on_match = tree.exact_match_map.map[key]
        elif m.HasField("matcher_list"):
            raise ValueError("matcher_list is not read here")
        if on_match.HasField("matcher"):
            m = on_match.matcher
            continue
        action = rbac_config_pb2.Action()
        if not on_match.action.typed_config.Unpack(action):
            raise ValueError("an RBAC matcher's action must be an RBAC Action")
        return ("allow" if action.action == rbac_config_pb2.RBAC.ALLOW else "deny"), action.name


def evaluate(
    table: route_pb2.RouteConfiguration, peer: str | None, method: str, path: str
) -> Evaluation:
    """What ``table``'s route for ``path`` (normalised) decides for a caller whose
    certificate names ``peer`` (None: plaintext) sending ``method``."""
    route = _route(table, path_of(path))
    config = route.typed_per_filter_config.get(RBAC_FILTER)
    if config is None:
        return Evaluation("allow", None, None)
    per_route = rbac_pb2.RBACPerRoute()
    config.Unpack(per_route)
    rbac = per_route.rbac
    if rbac.HasField("rules") or rbac.HasField("shadow_rules"):
        raise ValueError("policy rules are not read here (the compiler emits matchers)")
    outcome: Outcome = "allow"
    shadow: Outcome | None = None
    policy = None
    if rbac.HasField("matcher"):
        outcome, policy = _run(rbac.matcher, peer, method)
    if rbac.HasField("shadow_matcher"):
        shadow, policy = _run(rbac.shadow_matcher, peer, method)
    return Evaluation(outcome, shadow, policy)
