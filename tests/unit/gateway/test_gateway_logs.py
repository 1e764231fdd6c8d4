"""Envoy's output is split: access log to stdout, warnings to stderr, the rest stays put."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gossamer.gateway.logs import Kind, LogForwarder, classify


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ('{"status":200,"request_id":"x"}', Kind.ACCESS),
        ("[2026-11-25 19:02:51.195][4719][warning][main] [server.cc:1] no limit", Kind.MESSAGE),
        ("[2026-11-25 19:02:51.195][4719][error][config] [x.cc:2] rejected", Kind.MESSAGE),
        ("[2026-11-25 19:02:51.195][4719][critical][main] [x.cc:3] bad", Kind.MESSAGE),
        ("[2026-11-25 19:02:51.195][4719][info][main] [x.cc:4] starting", Kind.QUIET),
        ("[2026-11-25 19:02:51.195][4719][debug][upstream] [x.cc:5] hi", Kind.QUIET),
        ("Caught Segmentation fault, suspect faulting address 0x0", Kind.MESSAGE),
        ("   ", Kind.QUIET),
    ],
)
def test_classify(line: str, kind: Kind) -> None:
    assert classify(line) is kind


@pytest.mark.asyncio
async def test_forwarder_follows_the_file_from_its_end_and_waits_for_whole_lines(
    tmp_path: Path,
) -> None:
    log = tmp_path / "envoy.log"
    log.write_text('{"old": 1}\n')  # an earlier run's line: not forwarded again
    access: list[str] = []
    messages: list[str] = []
    fwd = LogForwarder(log, access.append, messages.append)
    with log.open("a") as f:
        f.write('{"status": 200}\n[t][1][warning][main] careful\n[t][1][info][main] ok\n{"sta')
    assert await fwd.step()
    assert access == ['{"status": 200}']
    assert messages == ["[t][1][warning][main] careful"]
    with log.open("a") as f:
        f.write('tus": 503}\n')
    assert await fwd.step()
    assert access == ['{"status": 200}', '{"status": 503}']
    assert not await fwd.step()


@pytest.mark.asyncio
async def test_run_forwards_what_is_left_after_stop(tmp_path: Path) -> None:
    log = tmp_path / "envoy.log"
    access: list[str] = []
    fwd = LogForwarder(log, access.append, lambda _: None, interval=0.01)
    stop = asyncio.Event()
    log.write_text('{"n": 1}\n{"n": 2}\n')
    stop.set()
    await fwd.run(stop)
    assert access == ['{"n": 1}', '{"n": 2}']
