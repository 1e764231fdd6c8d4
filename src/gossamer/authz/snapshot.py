"""The whole graph as plain data (names, not ids), and back.

Used to persist the graph, to compare graphs in tests, and to show that a refused change
changed nothing. The dump is canonical: equal graphs give equal dumps.
"""

from __future__ import annotations

from typing import Any

from gossamer.authz.graph import ADMIN_NODES, Graph, Kind
from gossamer.authz.prohibitions import Prohibition


def dump(graph: Graph) -> dict[str, Any]:
    g = graph
    nodes = []
    for node in g.nodes():
        name = g.name(node)
        if name in ADMIN_NODES:
            continue
        entry: dict[str, Any] = {
            "name": name,
            "kind": g.kind(node).name,
            "parents": sorted(g.name(p) for p in g.parents(node)),
        }
        props = g.properties(node)
        if props:
            entry["properties"] = props
        nodes.append(entry)
    associations = [
        {"userAttribute": g.name(u), "target": g.name(t), "rights": sorted(g.rights.names(bits))}
        for u, targets in g.assoc_out.items()
        for t, bits in targets.items()
    ]
    prohibitions = []
    for p in g.prohibitions.all():
        prohibitions.append(
            {
                "name": p.name,
                "subject": g.name(p.subject) if p.subject is not None else None,
                "process": p.process,
                "user": g.name(p.process_user) if p.process_user is not None else None,
                "rights": sorted(g.rights.names(p.rights)),
                "include": sorted(g.name(c) for c, comp in p.containers if not comp),
                "exclude": sorted(g.name(c) for c, comp in p.containers if comp),
                "conjunctive": p.conjunctive,
            }
        )
    return {
        "resourceRights": list(g.rights.resource_rights),
        "nodes": sorted(nodes, key=lambda n: n["name"]),
        "associations": sorted(associations, key=lambda a: (a["userAttribute"], a["target"])),
        "prohibitions": sorted(prohibitions, key=lambda p: p["name"]),
    }


def load(data: dict[str, Any], graph: Graph | None = None) -> Graph:
    """Rebuild a graph from :func:`dump` output (into ``graph`` if given, in one transaction)."""
    g = graph if graph is not None else Graph(data.get("resourceRights", ()))
    with g.transaction():
        if graph is not None and "resourceRights" in data:
            g.set_resource_rights(data["resourceRights"])
        pending = {n["name"]: n for n in data.get("nodes", [])}
        # create in topological order: a node after all of its parents
        while pending:
            ready = [n for n in pending.values() if all(p not in pending for p in n["parents"])]
            if not ready:
                raise ValueError(f"assignments form a cycle among {sorted(pending)[:5]}")
            for n in sorted(ready, key=lambda n: n["name"]):
                g.create_node(n["name"], Kind[n["kind"]], n["parents"], n.get("properties"))
                del pending[n["name"]]
        for a in data.get("associations", []):
            g.associate(a["userAttribute"], a["target"], a["rights"])
        for p in data.get("prohibitions", []):
            containers = tuple((g.id(c), False) for c in p["include"]) + tuple(
                (g.id(c), True) for c in p["exclude"]
            )
            g.add_prohibition(
                Prohibition(
                    name=p["name"],
                    rights=g.rights.encode(p["rights"]),
                    containers=containers,
                    conjunctive=p["conjunctive"],
                    subject=g.id(p["subject"]) if p.get("subject") else None,
                    process=p.get("process"),
                    process_user=g.id(p["user"]) if p.get("user") else None,
                )
            )
    return g
