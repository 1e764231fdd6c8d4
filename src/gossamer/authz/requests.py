"""Deciding one HTTP request to a meshed service on the graph itself: the engine's own answer,
which the compiled RBAC (``translate.rbac``) and a decision point must give too.

The deciding target is the deepest path prefix attribute that exists for the request's path
(looked up segment by segment, so it costs one dict lookup per segment whatever the size of
the graph), else the service's attribute (``mesh_names``).
"""

from __future__ import annotations

from gossamer.authz.decider import Decider
from gossamer.authz.elements import Kind
from gossamer.authz.graph import Graph
from gossamer.authz.mesh_names import path_of, prefix_error, prefix_target, service_target

_TARGET_KINDS = (Kind.OA, Kind.O)


def deciding_target(graph: Graph, service: tuple[str, str], path: str) -> str | None:
    """The name of the attribute that decides a request for ``path`` (normalised; a query
    string is ignored) to ``service``, or None if the service has no attribute."""
    path = path_of(path)
    segments = path.split("/")[1:] if path.startswith("/") else []
    for depth in range(len(segments), 0, -1):
        prefix = "/" + "/".join(segments[:depth])
        if prefix_error(prefix) is not None:
            continue
        name = prefix_target(*service, prefix)
        node = graph.find(name)
        if node is not None and graph.kind(node) in _TARGET_KINDS:
            return name
    name = service_target(*service)
    node = graph.find(name)
    return name if node is not None and graph.kind(node) in _TARGET_KINDS else None


def decide(
    graph: Graph, decider: Decider, user: str, service: tuple[str, str], method: str, path: str
) -> bool:
    """Is ``user`` (a caller's SPIFFE id) allowed ``method`` on ``path`` of ``service``?"""
    target = deciding_target(graph, service, path)
    u = graph.find(user)
    if target is None or u is None or graph.kind(u) != Kind.U:
        return False
    if method not in graph.rights.resource_rights:
        return False
    return decider.check(u, graph.id(target), method)
