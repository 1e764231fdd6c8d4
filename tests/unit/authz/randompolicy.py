"""Random NGAC policies as a list of plain operations, applied to our graph or to py-ngac."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from gossamer.authz.graph import ADMIN_POLICY_CLASSES, Graph, Kind
from gossamer.authz.prohibitions import Prohibition

RIGHTS = ("read", "write", "exec")


@dataclass
class Policy:
    ops: list[tuple[Any, ...]] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    processes: list[str] = field(default_factory=lambda: ["p1", "p2"])


def _pick_parents(rng: random.Random, pool: list[str], most: int = 3) -> list[str]:
    k = rng.randint(1, min(most, len(pool)))
    return rng.sample(pool, k)


def random_policy(rng: random.Random, size: int = 6) -> Policy:
    pol = Policy()
    pcs = [f"pc{i}" for i in range(rng.randint(1, 3))]
    pol.ops += [("node", pc, "PC", []) for pc in pcs]
    uas: list[str] = []
    for i in range(rng.randint(2, size)):
        name = f"ua{i}"
        pol.ops.append(("node", name, "UA", _pick_parents(rng, pcs + uas)))
        uas.append(name)
    oas: list[str] = []
    for i in range(rng.randint(2, size + 2)):
        name = f"oa{i}"
        pol.ops.append(("node", name, "OA", _pick_parents(rng, pcs + oas)))
        oas.append(name)
    for i in range(rng.randint(1, 4)):
        name = f"u{i}"
        pol.ops.append(("node", name, "U", _pick_parents(rng, uas)))
        pol.users.append(name)
    objs: list[str] = []
    for i in range(rng.randint(1, size)):
        name = f"o{i}"
        pol.ops.append(("node", name, "O", _pick_parents(rng, oas + pcs[:1] * rng.randint(0, 1))))
        objs.append(name)
    for _ in range(rng.randint(1, size + 4)):
        rights = rng.sample([*RIGHTS, "*"], rng.randint(1, 3))
        pol.ops.append(("assoc", rng.choice(uas), rng.choice(uas + oas + objs), rights))
    if rng.random() < 0.3:  # rights on policy classes, which also reach nodes assigned to one
        rights = rng.sample([*RIGHTS, "*"], rng.randint(1, 2))
        pol.ops.append(("assoc", rng.choice(uas), ADMIN_POLICY_CLASSES, rights))
    for i in range(rng.randint(0, 4)):
        containers = [(c, rng.random() < 0.4) for c in rng.sample(oas + objs, rng.randint(1, 3))]
        rights = rng.sample(RIGHTS, rng.randint(1, 2))
        conj = rng.random() < 0.5
        if rng.random() < 0.25:
            pol.ops.append(("pproc", f"pr{i}", rng.choice(pol.users),
                            rng.choice(pol.processes), rights, containers, conj))
        else:
            pol.ops.append(("prohib", f"pr{i}", rng.choice(uas + pol.users), rights,
                            containers, conj))
    pol.targets = oas + objs + uas + pcs
    return pol


def apply_to_graph(g: Graph, op: tuple[Any, ...]) -> None:
    if op[0] == "node":
        g.create_node(op[1], Kind[op[2]], op[3])
    elif op[0] == "assoc":
        g.associate(op[1], op[2], op[3])
    elif op[0] == "prohib":
        _, name, subject, rights, containers, conj = op
        g.add_prohibition(Prohibition(
            name, g.rights.encode(rights), tuple((g.id(c), comp) for c, comp in containers),
            conj, subject=g.id(subject)))
    elif op[0] == "pproc":
        _, name, user, process, rights, containers, conj = op
        g.add_prohibition(Prohibition(
            name, g.rights.encode(rights), tuple((g.id(c), comp) for c, comp in containers),
            conj, process=process, process_user=g.id(user)))
    else:  # pragma: no cover - a typo in a test
        raise AssertionError(op)


def build_graph(pol: Policy) -> Graph:
    g = Graph(RIGHTS)
    for op in pol.ops:
        apply_to_graph(g, op)
    return g
