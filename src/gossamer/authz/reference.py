"""The decision procedure, from scratch, exactly as NIST's reference implementation.

A port in our own words of usnistgov/policy-machine-core at commit
0ae045e5532b4960c9c78187dd17c9e21f90f8d8: ``UserEvaluator`` (breadth-first walk from the
user up its attributes, collecting association targets with their rights and the
prohibitions of every visited node, plus the process's prohibitions), ``TargetEvaluator``
(depth-first walk from the target to the policy classes, each node's per-policy-class
rights being the union of its descendants' plus its own association rights; a policy class
starts with the user's rights on ``PM_ADMIN:policy_classes`` when the target is assigned
directly to a policy class; a policy-class target is evaluated as
``PM_ADMIN:policy_classes``), and ``AccessRightResolver`` (wildcards resolved per policy
class, the intersection over the policy classes, minus the rights of every satisfied
prohibition).

It walks the graph on every call. The fast path (:mod:`gossamer.authz.decider`) must always
agree with it; property tests hold them to that.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from gossamer.authz.graph import Graph
from gossamer.authz.prohibitions import Prohibition, satisfied

#: who asks: a user node, or the user attributes an end user's claims map to
Subject = int | tuple[int, ...]


@dataclass(slots=True)
class UserDag:
    #: association target -> union of granted rights (bits)
    border: dict[int, int] = field(default_factory=dict)
    prohibitions: list[Prohibition] = field(default_factory=list)


@dataclass(slots=True)
class TargetDag:
    #: policy class -> rights before wildcard resolution (bits)
    pc_map: dict[int, int]
    #: prohibition containers the walk reached
    reached: set[int]


def evaluate_user(graph: Graph, subject: Subject, process: str | None = None) -> UserDag:
    dag = UserDag()
    if process is not None:
        dag.prohibitions.extend(graph.prohibitions.for_process(process))
    start = (subject,) if isinstance(subject, int) else subject
    seen: set[int] = set()
    queue = deque(start)
    while queue:
        node = queue.popleft()
        if node in seen:
            continue
        seen.add(node)
        dag.prohibitions.extend(graph.prohibitions.for_subject(node))
        for target, bits in graph.assoc_out.get(node, {}).items():
            dag.border[target] = dag.border.get(target, 0) | bits
        queue.extend(graph.parents(node))
    return dag


def evaluate_target(graph: Graph, user: UserDag, target: int) -> TargetDag:
    if graph.is_pc(target):
        target = graph.admin_policy_classes
    containers = {c for p in user.prohibitions for c, _ in p.containers}
    on_pcs = 0
    if any(graph.is_pc(p) for p in graph.parents(target)):
        admin = evaluate_target(graph, user, graph.admin_policy_classes)
        on_pcs = resolve(graph, user, admin)
    memo: dict[int, dict[int, int]] = {}
    reached: set[int] = set()

    def visit(node: int) -> dict[int, int]:
        found = memo.get(node)
        if found is not None:
            return found
        if node in containers:
            reached.add(node)
        rights: dict[int, int] = {}
        for parent in graph.parents(node):
            for pc, bits in visit(parent).items():
                rights[pc] = rights.get(pc, 0) | bits
        if graph.is_pc(node):
            rights[node] = on_pcs
        elif node in user.border:
            own = user.border[node]
            for pc in rights:
                rights[pc] |= own
        memo[node] = rights
        return rights

    return TargetDag(dict(visit(target)), reached)


def resolve(graph: Graph, user: UserDag, target: TargetDag) -> int:
    allowed: int | None = None
    for bits in target.pc_map.values():
        bits = graph.rights.resolve(bits)
        allowed = bits if allowed is None else allowed & bits
    if not allowed:
        return 0
    for p in user.prohibitions:
        if satisfied(p, target.reached):
            allowed &= ~p.rights
    return allowed


def privileges(graph: Graph, subject: Subject, target: int, process: str | None = None) -> int:
    """The rights (bits) ``subject`` holds on ``target``, computed from scratch."""
    user = evaluate_user(graph, subject, process)
    return resolve(graph, user, evaluate_target(graph, user, target))


def satisfied_prohibitions(
    graph: Graph, subject: Subject, target: int, process: str | None = None
) -> Sequence[Prohibition]:
    user = evaluate_user(graph, subject, process)
    dag = evaluate_target(graph, user, target)
    return [p for p in user.prohibitions if satisfied(p, dag.reached)]
