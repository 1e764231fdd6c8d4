"""What ``gossamer demo`` draws from a topology: rates from counts between reads, the call
tree, aligned plain lines, and the summary."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

from rich.console import Console

from gossamer.demo.view import (
    VERSIONS,
    EdgeRates,
    Tally,
    plain_table,
    rich_tree,
    split_text,
    summary,
    tree_lines,
)


def edge(source: str, destination: str, requests: int, errors: int = 0) -> dict[str, Any]:
    return {
        "source": source,
        "destination": destination,
        "requests": requests,
        "errors": errors,
        "rps": 0.01,  # the API's per-minute rate: not what the demo shows
        "latencyMs": {"p50": 4.25, "p90": 8.0, "p99": None if not requests else 9.5},
    }


SHOP = {
    "edges": [
        edge("default/edge", "default/web", 100),
        edge("default/web", "default/catalog", 90),
        edge("default/web", "default/reviews", 90, errors=2),
    ]
}


def test_rates_are_the_change_in_counts_over_the_seconds_between_reads() -> None:
    rates = EdgeRates()
    first = rates.rows(SHOP, now=110.0, started=100.0)
    assert first[0] == ["default/edge", "default/web", "10.0", "0", "4.2", "9.5", "100"]
    assert first[2][:4] == ["default/web", "default/reviews", "9.0", "2"]
    later = {"edges": [edge("default/edge", "default/web", 160)]}
    assert rates.rows(later, now=112.0, started=100.0)[0][2] == "30.0"


def test_the_tree_starts_at_the_caller_no_one_calls() -> None:
    notes = {"default/reviews": "[reviews-1 80%]"}
    assert tree_lines(SHOP, notes) == [
        "default/edge",
        "  -> default/web",
        "    -> default/catalog",
        "    -> default/reviews  [reviews-1 80%]",
    ]
    loop = {"edges": [edge("a", "b", 1), edge("b", "a", 1)]}
    assert tree_lines(loop) == ["a", "  -> b"]  # a cycle drawn once, still shown


def test_the_terminal_tree_keeps_brackets_as_text() -> None:
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(rich_tree(tree_lines(SHOP, {"default/reviews": "[v1 80%]"}), "topology"))
    assert "default/reviews  [v1 80%]" in console.export_text()


def test_plain_tables_align_names_left_and_figures_right() -> None:
    lines = plain_table([["a/x", "b/y", "1.0", "0", "1.0", "2.0", "10"]])
    assert lines[0] == "CALLER  CALLEE  RPS  ERRORS  P50 MS  P99 MS  REQUESTS"
    assert lines[1].startswith("a/x     b/y     ")
    assert lines[1].endswith("      10")


def test_the_summary_names_failures_and_the_split() -> None:
    tally = Tally(ok=8, failed=Counter({"HTTP 502": 2}), reviews=Counter(), seconds=5.0)
    tally.reviews.update({"reviews-1": 6, "reviews-2": 2})
    assert summary(tally) == (
        "summary: 8 of 10 requests succeeded in 5 s (2.0/s; HTTP 502: 2); reviews answered "
        "by reviews-1 (v1) 75.0%, reviews-2 (v2) 25.0% of 8 pages"
    )
    assert split_text(Counter(), VERSIONS) == "no pages yet"
