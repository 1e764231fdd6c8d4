"""``gossamer trace``'s waterfall and ``gossamer traces``' table, drawn from the API's JSON:
spans indented by depth, bars placed by start and sized by duration, failed spans red."""

from __future__ import annotations

from rich.console import Console

from gossamer.cli.traces import _bar, traces_table, waterfall

TRACE = {
    "traceId": "ab" * 16,
    "durationMs": 100.0,
    "spans": [
        {"name": "ingress", "service": "default/edge", "kind": "server", "depth": 0,
         "startMs": 0.0, "durationMs": 100.0, "status": 500, "error": True},
        {"name": "router a egress", "service": "default/edge", "kind": "client", "depth": 1,
         "startMs": 10.0, "durationMs": 50.0, "status": 200, "error": False},
        {"name": "b", "service": "default/b", "kind": "server", "depth": 2,
         "startMs": 99.9, "durationMs": 0.01, "status": 0, "error": False},
    ],
}  # fmt: skip


def draw(renderable: object) -> list[str]:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text().splitlines()


def test_the_waterfall_indents_by_parent_and_places_bars_on_the_time_line() -> None:
    drawn = draw(waterfall(TRACE, width=20))
    timeline = next(line for line in drawn if "OPERATION" in line).index("TIMELINE")
    lines = [line for line in drawn if "default/" in line]
    assert [line.split("default/")[0].rstrip()[1:] for line in lines] == [  # (a padding column)
        "ingress",
        "  router a egress",
        "    b",
    ]
    assert [line.index("█") - timeline for line in lines] == [0, 2, 19]
    assert [line.count("█") for line in lines] == [20, 10, 1]
    assert _bar(10.0, 50.0, 100.0, 20, False).plain == " " * 2 + "█" * 10 + " " * 8
    assert _bar(99.9, 0.01, 100.0, 20, False).plain == " " * 19 + "█"  # at least one, in range
    assert _bar(0.0, 0.0, 0.0, 20, False).plain == "█" + " " * 19  # a zero-length trace
    assert "+10.0ms" in lines[1] and "50.0ms" in lines[1]
    assert _bar(0.0, 1.0, 1.0, 4, True).spans[0].style == "red"


def test_the_traces_table_has_one_row_per_trace() -> None:
    found = [
        {"traceId": "cd" * 16, "start": 1_800_000_000.5, "durationMs": 12.345,
         "rootService": "default/edge", "rootName": "ingress", "services": ["default/a"],
         "spans": 5, "status": 503, "error": True, "requestId": "r-1"},
    ]  # fmt: skip
    [row] = [line for line in draw(traces_table(found)) if "cd" * 16 in line]
    for text in ("12.3ms", "default/edge ingress", "503", "r-1", "08:00:00.500"):
        assert text in row
