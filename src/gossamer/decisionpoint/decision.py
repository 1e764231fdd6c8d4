"""The decision point's decisions, without gRPC: a request's calling service (the peer's
URI SAN) and end user (a verified token's payload) decided on one graph, both needing to
be allowed (docs/ngac.md, "End users").

A ``Policy`` is one version of the control plane's graph document (``GET /v1/authz/graph``):
the graph, a fresh decider over it (its caches are the decision cache; a new version is a
new decider, so nothing decided on the old graph survives) and the issuers'
``claimsToAttributes``. The service a request is for comes from the route
(``ext_authz``'s context extension ``service: <ns>/<svc>``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gossamer.authz.decider import Decider
from gossamer.authz.elements import Kind
from gossamer.authz.end_users import EndUser, claim_attributes, subject_of
from gossamer.authz.graph import Graph
from gossamer.authz.mesh_names import path_of, prefix_error, service_target
from gossamer.authz.snapshot import load
from gossamer.errors import ConfigError
from gossamer.model.authentication import end_user

#: candidate deciding attributes remembered per version at most (each a name and a bool)
MAX_REMEMBERED_TARGETS = 100_000
_TARGET_KINDS = (Kind.OA, Kind.O)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    #: one line: who, what, and why not (empty when allowed)
    reason: str = ""
    #: the token's user, ``jwt:<issuer>#<sub>`` ("" without a token, or one without both)
    end_user: str = ""
    #: the attribute decided on (``svc:<ns>/<svc>[:<prefix>]``; "" when none was reached)
    target: str = ""


@dataclass
class Policy:
    version: str
    graph: Graph
    decider: Decider
    #: issuer -> claim -> value -> user attribute
    issuers: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    #: a candidate deciding attribute's name -> whether it decides (exists as an object
    #: (attribute); for a prefix, also a valid prefix): ``requests.deciding_target``'s
    #: lookups, remembered for this version (bounded: emptied when full)
    _targets: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)
    #: the same for a service's own attribute
    _services: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)
    #: the decider's caches are not safe for concurrent checks: one at a time
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def of(cls, document: Mapping[str, Any], where: str) -> Policy:
        """A policy from a graph document; ``ConfigError`` naming ``where`` if malformed."""
        try:
            graph = load(document["graph"])
            issuers = {
                str(i["issuer"]): {
                    str(c): {str(v): str(a) for v, a in values.items()}
                    for c, values in i.get("claimsToAttributes", {}).items()
                }
                for i in document.get("issuers", [])
            }
            return cls(str(document["version"]), graph, Decider(graph), issuers)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise ConfigError(f"{where}: not a graph document ({e!r})") from None

    def target(self, service: tuple[str, str], path: str) -> str | None:
        """``requests.deciding_target(graph, service, path)``, with each candidate's lookup
        remembered: the deepest existing prefix attribute covering the normalised path
        (its prefixes are the path cut at each '/', deepest first), else the service's."""
        path = path_of(path)
        known = self._targets
        if len(known) > MAX_REMEMBERED_TARGETS:
            known.clear()
        base = service_target(*service)
        if path.startswith("/"):
            end = len(path)
            while end > 0:
                name = f"{base}:{path[:end]}"
                hit = known.get(name)
                if hit is None:
                    hit = known[name] = self._decides(name, path[:end])
                if hit:
                    return name
                end = path.rfind("/", 0, end)
        services = self._services
        hit = services.get(base)
        if hit is None:
            if len(services) > MAX_REMEMBERED_TARGETS:
                services.clear()
            hit = services[base] = self._decides(base, None)
        return base if hit else None

    def _decides(self, name: str, prefix: str | None) -> bool:
        if prefix is not None and prefix_error(prefix) is not None:
            return False
        node = self.graph.find(name)
        return node is not None and self.graph.kind(node) in _TARGET_KINDS

    def allows_caller(self, user: str, target: str | None, method: str) -> bool:
        """``requests.decide`` on the deciding attribute already found."""
        g = self.graph
        u = g.find(user)
        if target is None or u is None or g.kind(u) != Kind.U:
            return False
        if method not in g.rights.resource_rights:
            return False
        with self._lock:
            return self.decider.check(u, g.id(target), method)

    def allows_end_user(self, user: EndUser, target: str | None, method: str) -> bool:
        """``end_users.decide_end_user`` on the deciding attribute already found."""
        g = self.graph
        if target is None or method not in g.rights.resource_rights:
            return False
        subject = subject_of(g, user)
        if subject is None:
            return False
        with self._lock:
            return self.decider.check(subject, g.id(target), method)


def service_ref(text: str) -> tuple[str, str] | None:
    """``(ns, svc)`` of the route's ``ns/svc``, None if it is not one."""
    ns, sep, name = text.partition("/")
    return (ns, name) if sep and ns and name else None


class DecisionPoint:
    """Decides with the current :class:`Policy` (None until the first arrives: deny).

    The policy is read once per decision (``decide_user``): a new version assigned while a
    check runs (from another thread) is used by the next check, never half by this one.
    """

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy

    def end_user(self, payload: Mapping[str, Any]) -> EndUser | None:
        """The end user of a verified token's payload (None without ``iss``/``sub``)."""
        return user_of(self.policy, payload)

    def decide(
        self,
        service: str,
        method: str,
        path: str,
        principal: str = "",
        payload: Mapping[str, Any] | None = None,
    ) -> Verdict:
        """Allow only if the calling service (``principal``, if any) and the end user (the
        token's ``payload``, if any) are both allowed ``method`` on ``path`` of ``service``;
        a request with neither is denied."""
        policy = self.policy
        user = user_of(policy, payload) if payload is not None else None
        return decide_user(policy, service, method, path, principal, user, payload is not None)


def user_of(policy: Policy | None, payload: Mapping[str, Any]) -> EndUser | None:
    """The end user of a verified token's payload under ``policy``'s claim mappings."""
    issuer, subject = payload.get("iss"), payload.get("sub")
    if not isinstance(issuer, str) or not isinstance(subject, str):
        return None
    mapping = policy.issuers.get(issuer, {}) if policy else {}
    return EndUser(end_user(issuer, subject), claim_attributes(payload, mapping))


def decide_user(
    policy: Policy | None,
    service: str,
    method: str,
    path: str,
    principal: str,
    user: EndUser | None,
    token: bool,
) -> Verdict:
    """:meth:`DecisionPoint.decide` with the token's user already read (``token``: the
    request carried a verified token; ``user`` None then means it had no iss or sub)."""
    name = user.name if user is not None else ""
    if policy is None:
        return Verdict(False, "the decision point has no graph yet", name)
    ref = service_ref(service)
    if ref is None:
        return Verdict(False, f"the route names no service ({service!r})", name)
    found = policy.target(ref, path)
    return decide_on(policy, service, found, method, principal, user, token)


def decide_on(
    policy: Policy,
    service: str,
    found: str | None,
    method: str,
    principal: str,
    user: EndUser | None,
    token: bool,
) -> Verdict:
    """:func:`decide_user` once the deciding attribute is known (``found``: the policy's
    :meth:`Policy.target` for the request's path, None when the service has none). Nothing
    else of the request matters: answers can be kept under these arguments."""
    name = user.name if user is not None else ""
    target = found or f"svc:{service}"
    if not principal and not token:
        return Verdict(False, "no caller identity and no token", name, target)
    if principal and not policy.allows_caller(principal, found, method):
        return Verdict(False, f"{principal} may not {method} {target}", name, target)
    if token:
        if user is None:
            return Verdict(False, "the token has no iss or sub", name, target)
        if not policy.allows_end_user(user, found, method):
            held = f" (as {', '.join(user.attributes)})" if user.attributes else ""
            return Verdict(False, f"{name}{held} may not {method} {target}", name, target)
    return Verdict(True, "", name, target)
