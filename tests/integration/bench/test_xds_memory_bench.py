"""``bench/xds_memory.py`` runs end to end at a small size: every stage's RSS, what the
snapshots hold, and the summary line."""

from __future__ import annotations

import re

import pytest
from tests.integration.bench.bench_run import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_xds_memory_bench_prints_every_stage() -> None:
    code, out = await run_bench(
        "xds_memory.py", "--services", "200", "--sidecars", "100", within=120
    )
    assert code == 0, out
    for stage in (
        "resources parsed",
        "model snapshot",
        "gateway 1 ",
        "gateways 2-12",
        "100 sidecars",
    ):
        assert re.search(rf"^.*{stage}.* RSS +\d+ MB +\+ *-?\d+ MB", out, re.M), out
    assert re.search(r"^held: \d+ resources in 112 snapshots", out, re.M), out
    assert re.search(r"^one gateway route table \(200 virtual hosts\)", out, re.M), out
    assert re.search(r"^MEMORY services=200 total_mb=\d+ baseline_mb=\d+$", out, re.M), out
