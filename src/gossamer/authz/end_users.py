"""Deciding a request of an end user known by a verified token (docs/ngac.md, "End users").

An end user is the NGAC user ``jwt:<issuer>#<sub>``. It need not be a node: the issuer's
``claimsToAttributes`` turns its claims into user attributes, and the decision is the one a
user assigned to exactly those attributes (and, if the graph has a node of that name, to
what that node is assigned to, with its own prohibitions) would get: a *virtual user*. The
decider takes such a subject as a tuple of nodes (``reference.Subject``) and caches it like
any user, so a thousand people in one group share one cached view.

The deciding attribute is the same as for a service caller (``requests.deciding_target``):
the compiled RBAC, the decision point and ``authz check`` decide alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gossamer.authz.decider import Decider
from gossamer.authz.elements import Kind
from gossamer.authz.graph import Graph
from gossamer.authz.reference import Subject
from gossamer.authz.requests import deciding_target


@dataclass(frozen=True, slots=True)
class EndUser:
    """A verified token's user and the user attributes its claims map to."""

    #: ``jwt:<issuer>#<sub>``
    name: str
    attributes: tuple[str, ...] = ()


def claim_attributes(
    claims: Mapping[str, object], mapping: Mapping[str, Mapping[str, str]]
) -> tuple[str, ...]:
    """The user attributes ``claims`` map to: for each mapped claim, its value (a string, or
    each string of a list; numbers and booleans as JSON writes them) looked up in the
    claim's mapping; unmapped values are ignored."""
    out: set[str] = set()
    for claim, values in mapping.items():
        got = claims.get(claim)
        items: Iterable[object] = got if isinstance(got, list) else (got,)
        for item in items:
            if isinstance(item, bool):
                key = "true" if item else "false"
            elif isinstance(item, str | int):
                key = str(item)
            else:
                continue
            attribute = values.get(key)
            if attribute is not None:
                out.add(attribute)
    return tuple(sorted(out))


def subject_of(graph: Graph, user: EndUser) -> Subject | None:
    """The nodes ``user`` stands for: its own user node if the graph has one, and each of its
    attributes that is a user attribute (others are ignored: a claim cannot make anyone an
    object). None when none exists: such a user holds nothing."""
    nodes: set[int] = set()
    own = graph.find(user.name)
    if own is not None and graph.kind(own) == Kind.U:
        nodes.add(own)
    for name in user.attributes:
        node = graph.find(name)
        if node is not None and graph.kind(node) == Kind.UA:
            nodes.add(node)
    if not nodes:
        return None
    if len(nodes) == 1 and own in nodes:
        assert own is not None
        return own  # exactly the graph's user: share its cached view with `authz check`
    return tuple(sorted(nodes))


def decide_end_user(
    graph: Graph,
    decider: Decider,
    user: EndUser,
    service: tuple[str, str],
    method: str,
    path: str,
) -> bool:
    """Is ``user`` allowed ``method`` on ``path`` (normalised) of ``service``?"""
    target = deciding_target(graph, service, path)
    if target is None or method not in graph.rights.resource_rights:
        return False
    subject = subject_of(graph, user)
    if subject is None:
        return False
    return decider.check(subject, graph.id(target), method)
