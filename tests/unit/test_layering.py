"""The architecture as a test: which package of ``gossamer`` may import which.

Floors, top to bottom (a package may import packages on its own floor or below, never above):

    cli → demo → testing → server → api → registry → controlplane → xds/agent/gateway/ratelimit
        → envoy/authz/translate/ca → store/model
        → node/errors/types (+ polling, ports, port_claims, files, cancel, layered)

and, more narrowly: ``model`` knows only the core; ``translate`` does no I/O; ``xds`` knows
only the core (and ``model`` for nothing); the agent never touches the store; no cycles.
Every import counts, also those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from functools import cache
from pathlib import Path

import gossamer

ROOT = Path(gossamer.__file__).parent

FLOORS: list[set[str]] = [
    {"cli"},
    {"demo"},
    {"testing"},
    {"server"},
    {"api"},
    {"registry"},
    {"controlplane", "backup"},
    {"xds", "agent", "gateway", "ratelimit", "decisionpoint", "telemetry"},
    {"envoy", "authz", "translate", "ca"},
    {"store", "model"},
    {"node", "errors", "types", "polling", "ports", "port_claims", "files", "cancel", "layered"},
]
FLOOR = {pkg: level for level, pkgs in enumerate(FLOORS) for pkg in pkgs}
CORE = {"node", "errors", "types"}

#: imports of these modules (or packages) are forbidden to the package on the left
FORBIDDEN: dict[str, set[str]] = {
    "model": {p for p in FLOOR if p not in {"model", "types", "errors"}},
    "translate": {"store", "xds", "api", "controlplane", "server", "envoy.process"},
    "xds": {"controlplane", "translate", "api", "server", "store", "registry"},
    "agent": {"store", "controlplane", "server", "api", "registry"},
    # a request-path service in its own process: it reads its rules through the API
    "ratelimit": {"store", "controlplane", "server", "api", "registry"},
    # the NGAC decision point (authz serve), likewise: it reads the graph through the API
    "decisionpoint": {"store", "controlplane", "server", "api", "registry"},
    # the telemetry service (telemetry serve), its own process fed by Envoys' access logs
    "telemetry": {"store", "controlplane", "server", "api", "registry"},
}


def _package(module: str) -> str:
    return module.split(".")[1]


@cache
def imports() -> dict[str, set[tuple[str, str]]]:
    """Package -> {(importing file, imported gossamer module)}."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] == "__init__.py":
            continue
        pkg = rel.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("gossamer.") and _package(name) != pkg:
                    found[pkg].add((str(rel), name))
    return found


def test_every_package_has_a_floor() -> None:
    packages = {
        p.name.removesuffix(".py")
        for p in ROOT.iterdir()
        if (p.is_dir() and any(p.glob("*.py"))) or (p.suffix == ".py" and p.name != "__init__.py")
    }
    unplaced = sorted(packages - FLOOR.keys())
    assert not unplaced, f"give these packages a floor in FLOORS: {unplaced}"


def test_no_package_imports_one_drawn_above_it() -> None:
    upward = sorted(
        f"{where} imports {name} ({pkg} is below {_package(name)})"
        for pkg, found in imports().items()
        for where, name in found
        if _package(name) in FLOOR and FLOOR[_package(name)] < FLOOR[pkg]
    )
    assert not upward, "\n".join(upward)


def test_narrow_rules() -> None:
    broken = sorted(
        f"{where} imports {name}: {pkg} may not import {rule}"
        for pkg, rules in FORBIDDEN.items()
        for where, name in imports().get(pkg, set())
        for rule in rules
        if name == f"gossamer.{rule}" or name.startswith(f"gossamer.{rule}.")
    )
    assert not broken, "\n".join(broken)


def test_no_package_cycles() -> None:
    graph = {pkg: {_package(n) for _, n in found} for pkg, found in imports().items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            here = todo.pop()
            if here == goal:
                return True
            if here not in seen:
                seen.add(here)
                todo.extend(graph.get(here, ()))
        return False

    cycles = sorted(
        f"{a} <-> {b}"
        for a, b in itertools.combinations(sorted(graph), 2)
        if reaches(a, b) and reaches(b, a)
    )
    assert not cycles, "package cycles: " + ", ".join(cycles)


def test_the_core_imports_only_the_core() -> None:
    outside = sorted(
        f"{where} imports {name}"
        for pkg in CORE
        for where, name in imports().get(pkg, set())
        if _package(name) not in CORE
    )
    assert not outside, "\n".join(outside)
