"""``bench/xds_fanout.py`` runs end to end at a small size: both servers deliver every push
to every stream it targets (a lost ACK fails the run), and the report has its lines."""

from __future__ import annotations

import re

import pytest
from tests.integration.bench.bench_run import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_xds_fanout_bench_measures_both_servers() -> None:
    code, out = await run_bench(
        "xds_fanout.py", "--streams", "60", "--fanouts", "5,55", "--repeats", "3", within=120
    )
    assert code == 0, out
    for fanout in (5, 55):
        assert f"fan-out {fanout} streams (3 pushes each):" in out, out
    for server in ("bare", "gossamer"):
        lines = re.findall(rf"^  {server} +all ACKed p50 +[\d.]+ ms +p99 +[\d.]+ ms", out, re.M)
        assert len(lines) == 2, out
    assert len(re.findall(r"^  gossamer / bare: p50 [\d.]+x", out, re.M)) == 2, out
