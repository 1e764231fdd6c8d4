"""NGAC policy elements: the node kinds, the assignment rules between them and the
administrative policy's nodes (the change events the graph publishes are in ``changes``)."""

from __future__ import annotations

from enum import IntEnum


class Kind(IntEnum):
    PC = 0
    UA = 1
    OA = 2
    U = 3
    O = 4  # noqa: E741


#: which kinds a node of each kind may be assigned to
ALLOWED_PARENTS: dict[Kind, frozenset[Kind]] = {
    Kind.PC: frozenset(),
    Kind.UA: frozenset({Kind.UA, Kind.PC}),
    Kind.OA: frozenset({Kind.OA, Kind.PC}),
    Kind.U: frozenset({Kind.UA}),
    Kind.O: frozenset({Kind.OA, Kind.PC}),
}
ASSOCIATION_TARGETS = frozenset({Kind.UA, Kind.OA, Kind.O})

ADMIN_PC = "PM_ADMIN"
ADMIN_BASE = "PM_ADMIN:base"
ADMIN_POLICY_CLASSES = "PM_ADMIN:policy_classes"
ADMIN_OBLIGATIONS = "PM_ADMIN:obligations"
ADMIN_PROHIBITIONS = "PM_ADMIN:prohibitions"
ADMIN_NODES = (ADMIN_PC, ADMIN_BASE, ADMIN_POLICY_CLASSES, ADMIN_OBLIGATIONS, ADMIN_PROHIBITIONS)
