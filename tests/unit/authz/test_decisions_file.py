"""The trail's file: read back from its end (newest ``keep``, within a byte budget, across
the rotated file), damaged lines skipped and counted, rotated past a size."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gossamer.authz import decisions_file
from gossamer.authz.decisions import DecisionTrail, RequestDecision
from gossamer.polling import wait_until


def _d(rid: str) -> RequestDecision:
    return RequestDecision(
        request_id=rid,
        at=2.5,
        source="ext_authz",
        decision="deny",
        service="shop/cart",
        caller="",
        end_user="jwt:https://idp#bob",
        method="GET",
        path="/items",
        reason="no grant",
        reporter="dp",
    )


def _line(rid: str) -> str:
    return json.dumps(_d(rid).as_dict(), sort_keys=True) + "\n"


def _ids(records: list[RequestDecision]) -> list[str]:
    return [r.request_id for r in records]


def test_the_newest_keep_are_read_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    path.write_text("".join(_line(f"r{i}") for i in range(10)))
    got = decisions_file.read_newest(path, 3, RequestDecision.from_dict)
    assert _ids(got.records) == ["r7", "r8", "r9"]
    assert got.records[-1] == _d("r9")
    assert (got.skipped, got.torn) == (0, False)


def test_damaged_lines_and_a_torn_last_line_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    wrong_type = json.dumps({**_d("x").as_dict(), "at": "soon"})
    unknown = json.dumps({**_d("y").as_dict(), "extra": "1"})
    text = _line("a") + "not json\n" + wrong_type + "\n[1]\n" + unknown + "\n" + _line("b")
    path.write_text(text + '{"request_id": "c", "at"')
    got = decisions_file.read_newest(path, 100, RequestDecision.from_dict)
    assert _ids(got.records) == ["a", "b"]
    assert (got.skipped, got.torn) == (5, True)


def test_only_the_budget_is_read_from_the_end(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    path.write_text("".join(_line(f"r{i:04d}") for i in range(2000)))
    size = len(_line("r0000"))
    got = decisions_file.read_newest(path, 10_000, RequestDecision.from_dict, budget=10 * size + 5)
    # ten whole lines fit; the one cut by the budget is not read, nor counted as damaged
    assert _ids(got.records) == [f"r{i:04d}" for i in range(1990, 2000)]
    assert got.skipped == 0


def test_lines_across_read_blocks_are_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decisions_file, "_BLOCK", 37)
    path = tmp_path / "decisions.jsonl"
    path.write_text("".join(_line(f"r{i}") for i in range(50)))
    got = decisions_file.read_newest(path, 1000, RequestDecision.from_dict)
    assert _ids(got.records) == [f"r{i}" for i in range(50)] and got.skipped == 0


def test_the_rotated_file_supplies_the_older_records(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    decisions_file.rotated(path).write_text("".join(_line(f"old{i}") for i in range(5)))
    path.write_text(_line("new0") + _line("new1"))
    got = decisions_file.read_newest(path, 4, RequestDecision.from_dict)
    assert _ids(got.records) == ["old3", "old4", "new0", "new1"]
    assert (
        _ids(decisions_file.read_newest(path, 99, RequestDecision.from_dict).records)[0] == "old0"
    )
    assert decisions_file.read_newest(tmp_path / "none", 5, RequestDecision.from_dict).records == []


def test_append_rotates_past_the_size(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    one = len(_line("a"))
    for rid in ("a", "b", "c"):
        decisions_file.append(path, _line(rid), rotate_bytes=2 * one)
    # a, b: not past the size; c made it 3 lines: moved to .1
    assert not path.exists()
    assert decisions_file.rotated(path).read_text() == _line("a") + _line("b") + _line("c")
    decisions_file.append(path, _line("d"), rotate_bytes=2 * one)
    assert path.read_text() == _line("d")
    assert (path.stat().st_mode & 0o777) == 0o600


@pytest.mark.asyncio
async def test_a_trail_opened_again_holds_what_was_recorded_and_rotated(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    one = len(_line("r0"))
    trail = await DecisionTrail.open(path, rotate_bytes=5 * one)  # r0..r5 rotated
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(trail.run())
        for i in range(8):
            trail.record(_d(f"r{i}"))
            await wait_until(lambda n=i + 1: trail.written == n, timeout=5, interval=0.01)
        task.cancel()
    assert decisions_file.rotated(path).exists()
    again = await DecisionTrail.open(path, keep=5)
    assert [d.request_id for d in again.recent(10)] == ["r7", "r6", "r5", "r4", "r3"]
    assert again.find("r4") == [_d("r4")] and again.find("r2") == []
    assert (again.loaded, again.skipped, again.recorded) == (5, 0, 0)
