"""Why a user holds (or lacks) rights on a target, and everything a user may do.

``explain`` follows the reference's ``Explainer``: per policy class of the target, each path
from the target up to the policy class, with the associations on each node whose user
attribute the user reaches (and the user's paths to that attribute); the rights that policy
class grants; the rights denied and the prohibitions that denied them. ``access`` is the
reference's capability list: every node below an association target the user reaches, with
the rights the user holds on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gossamer.authz import reference
from gossamer.authz.decider import Decider
from gossamer.authz.graph import Graph
from gossamer.authz.prohibitions import satisfied

#: explain lists at most this many paths per policy class (a DAG may have very many)
MAX_PATHS = 64


@dataclass(frozen=True, slots=True)
class Grant:
    userAttribute: str
    rights: list[str]
    #: how the user reaches the attribute: [user, ua, ..., userAttribute]
    userPaths: list[list[str]]


@dataclass(frozen=True, slots=True)
class Step:
    node: str
    grants: list[Grant] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PolicyClassExplanation:
    policyClass: str
    rights: list[str]
    paths: list[list[Step]]


@dataclass(frozen=True, slots=True)
class Explanation:
    user: str
    target: str
    process: str | None
    rights: list[str]
    policyClasses: list[PolicyClassExplanation]
    denied: list[str]
    #: prohibitions that removed rights: name -> the rights each denies
    prohibitions: dict[str, list[str]]

    def to_data(self) -> dict[str, Any]:
        def step(s: Step) -> dict[str, Any]:
            return {
                "node": s.node,
                "grants": [
                    {"userAttribute": g.userAttribute, "rights": g.rights, "userPaths": g.userPaths}
                    for g in s.grants
                ],
            }

        return {
            "user": self.user,
            "target": self.target,
            "process": self.process,
            "rights": self.rights,
            "denied": self.denied,
            "prohibitions": self.prohibitions,
            "policyClasses": [
                {
                    "policyClass": pc.policyClass,
                    "rights": pc.rights,
                    "paths": [[step(s) for s in p] for p in pc.paths],
                }
                for pc in self.policyClasses
            ],
        }


def explanation_from_data(data: dict[str, Any]) -> Explanation:
    """The inverse of ``Explanation.to_data`` (e.g. for an explanation read over the API)."""

    def step(s: dict[str, Any]) -> Step:
        return Step(
            s["node"], [Grant(g["userAttribute"], g["rights"], g["userPaths"]) for g in s["grants"]]
        )

    return Explanation(
        data["user"],
        data["target"],
        data.get("process"),
        data["rights"],
        [
            PolicyClassExplanation(
                pc["policyClass"], pc["rights"], [[step(s) for s in p] for p in pc["paths"]]
            )
            for pc in data["policyClasses"]
        ],
        data["denied"],
        data["prohibitions"],
    )


def _paths_up(g: Graph, start: int, goal: int, limit: int) -> list[list[int]]:
    """Paths start -> ... -> goal following parents (at most ``limit``)."""
    out: list[list[int]] = []
    stack: list[tuple[int, list[int]]] = [(start, [start])]
    while stack and len(out) < limit:
        node, path = stack.pop()
        if node == goal:
            out.append(path)
            continue
        for p in reversed(g.parents(node)):
            if g.reaches(p, goal):
                stack.append((p, [*path, p]))
    return out


def explain(g: Graph, user: str, target: str, process: str | None = None) -> Explanation:
    u, t = g.id(user, "user"), g.id(target, "target")
    user_dag = reference.evaluate_user(g, u, process)
    effective = g.admin_policy_classes if g.is_pc(t) else t
    target_dag = reference.evaluate_target(g, user_dag, effective)
    granted = reference.resolve(g, user_dag, target_dag)
    names = g.rights.names
    pcs = []
    for pc, bits in sorted(target_dag.pc_map.items(), key=lambda kv: g.name(kv[0])):
        paths = []
        for path in _paths_up(g, effective, pc, MAX_PATHS):
            steps = []
            for node in path:
                grants = [
                    Grant(
                        g.name(ua),
                        names(r),
                        [[g.name(n) for n in p] for p in _paths_up(g, u, ua, 8)],
                    )
                    for ua, r in sorted(g.assoc_in.get(node, {}).items())
                    if g.reaches(u, ua)
                ]
                steps.append(Step(g.name(node), grants))
            paths.append(steps)
        pcs.append(PolicyClassExplanation(g.name(pc), names(g.rights.resolve(bits)), paths))
    denied = 0
    prohibitions: dict[str, list[str]] = {}
    for p in user_dag.prohibitions:
        if satisfied(p, target_dag.reached):
            denied |= p.rights
            prohibitions[p.name] = names(p.rights)
    return Explanation(user, target, process, names(granted), pcs, names(denied), prohibitions)


def access(decider: Decider, user: str, process: str | None = None) -> dict[str, list[str]]:
    """Every node the user holds rights on (below the association targets it reaches)."""
    g = decider.graph
    u = g.id(user, "user")
    view = decider.user_view(u)
    seen: set[int] = set()
    stack = list(view.border)
    out: dict[str, list[str]] = {}
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        bits = decider.privileges(u, node, process)
        if bits:
            out[g.name(node)] = g.rights.names(bits)
        stack.extend(g.children(node))
    return dict(sorted(out.items()))
