"""What ``gossamer demo`` shows, as pure functions of the control plane's
``GET /v1/topology`` (client view) and the traffic generator's counts, so the rendering is
tested without I/O: the call tree, one row per edge and the closing summary.

Rates are the demo's own: the change in an edge's request count between two reads over the
seconds between them (the topology's ``rps`` divides by whole minutes, which a demo a few
seconds old has not lived). Latency and errors cover the run so far.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

VERSIONS = {"reviews-1": "v1", "reviews-2": "v2"}
COLUMNS = ("CALLER", "CALLEE", "RPS", "ERRORS", "P50 MS", "P99 MS", "REQUESTS")


@dataclass
class Tally:
    """What the traffic generator saw, kept by ``gossamer demo`` for its summary (also on
    Ctrl-C): pages answered 200, other answers, and which reviews instance each named."""

    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    reviews: Counter[str] = field(default_factory=Counter)
    started: float | None = None
    seconds: float = 0.0
    #: set by Ctrl-C once traffic runs: the run stops and prints its figures
    interrupt: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def total(self) -> int:
        return self.ok + sum(self.failed.values())


@dataclass
class EdgeRates:
    """Each edge's request count at the last read, to turn counts into rates."""

    last: dict[tuple[str, str], int] = field(default_factory=dict)
    at: float | None = None

    def rows(self, topology: dict[str, Any], now: float, started: float) -> list[list[str]]:
        """One row per client-view edge (``COLUMNS``), busiest first: requests per second
        since the previous read (since ``started`` at the first), errors, p50/p99 (ms)."""
        since = self.at if self.at is not None else started
        seconds = max(now - since, 1e-3)
        rows: list[tuple[float, list[str]]] = []
        counts: dict[tuple[str, str], int] = {}
        for e in topology.get("edges", []):
            pair = (str(e["source"]), str(e["destination"]))
            n = int(e.get("requests") or 0)
            counts[pair] = n
            rps = max(n - self.last.get(pair, 0), 0) / seconds
            latency = e.get("latencyMs") or {}
            rows.append(
                (
                    rps,
                    [
                        *pair,
                        f"{rps:.1f}",
                        str(int(e.get("errors") or 0)),
                        _ms(latency.get("p50")),
                        _ms(latency.get("p99")),
                        str(n),
                    ],
                )
            )
        self.last, self.at = counts, now
        rows.sort(key=lambda r: (-r[0], r[1][0], r[1][1]))
        return [r for _, r in rows]


def _ms(value: object) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:.1f}"


def split_text(reviews: Counter[str], instances: dict[str, str]) -> str:
    """``reviews-1 (v1) 80.2%, reviews-2 (v2) 19.8% of 510 pages``: who answered the
    reviews call of each page web served (the route splits 80/20)."""
    n = sum(reviews.values())
    if not n:
        return "no pages yet"
    parts = [
        f"{name}{f' ({instances[name]})' if name in instances else ''} {100.0 * k / n:.1f}%"
        for name, k in sorted(reviews.items())
    ]
    return f"{', '.join(parts)} of {n} pages"


def tree_lines(topology: dict[str, Any], notes: dict[str, str] | None = None) -> list[str]:
    """The call tree from each caller no one calls (the gateway), callees indented under
    their callers, ASCII only; ``notes`` adds text after a node."""
    notes = notes or {}
    children: dict[str, list[str]] = {}
    callees: set[str] = set()
    for e in topology.get("edges", []):
        children.setdefault(str(e["source"]), []).append(str(e["destination"]))
        callees.add(str(e["destination"]))
    lines: list[str] = []

    def walk(node: str, depth: int, seen: frozenset[str]) -> None:
        note = f"  {notes[node]}" if node in notes else ""
        lines.append(f"{'  ' * depth}{'-> ' if depth else ''}{node}{note}")
        for child in sorted(children.get(node, [])):
            if child not in seen:  # a cycle is drawn once
                walk(child, depth + 1, seen | {child})

    for root in sorted(set(children) - callees) or sorted(children)[:1]:
        walk(root, 0, frozenset({root}))
    return lines


def rich_tree(lines: list[str], title: str) -> Tree:
    """``tree_lines`` as a Rich tree, for a terminal."""
    tree = Tree(title)
    stack: list[tuple[int, Tree]] = [(-1, tree)]
    for line in lines:
        depth = (len(line) - len(line.lstrip(" "))) // 2
        while stack[-1][0] >= depth:
            stack.pop()
        label = Text(line.strip().removeprefix("-> "))  # not markup: notes hold brackets
        stack.append((depth, stack[-1][1].add(label)))
    return tree


def plain_table(rows: list[list[str]]) -> list[str]:
    """``COLUMNS`` and ``rows`` as aligned text lines: names left, figures right."""
    widths = [max(len(r[i]) for r in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(list(COLUMNS)), *(line(r) for r in rows)]


def rich_table(rows: list[list[str]], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=None)
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if i < 2 else "right")
    for r in rows:
        table.add_row(*r)
    return table


def summary(tally: Tally) -> str:
    """The closing line: pages served, their rate, failures by kind, the reviews split."""
    rps = tally.total / tally.seconds if tally.seconds > 0 else 0.0
    failed = ", ".join(f"{k}: {n}" for k, n in sorted(tally.failed.items())) or "none failed"
    return (
        f"summary: {tally.ok} of {tally.total} requests succeeded in {tally.seconds:.0f} s "
        f"({rps:.1f}/s; {failed}); reviews answered by "
        f"{split_text(tally.reviews, VERSIONS)}"
    )
