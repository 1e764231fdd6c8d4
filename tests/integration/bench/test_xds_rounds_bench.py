"""``bench/xds_rounds.py`` at a small size: endpoint and route rounds on a running plane,
then every proxy's snapshot compared with a fresh translation of the final model (a cache
kept too long shows as a difference and fails this). No absolute figure is asserted."""

from __future__ import annotations

import re

import pytest
from tests.integration.bench.bench_run import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_rounds_end_with_every_proxy_a_fresh_translation() -> None:
    code, out = await run_bench(
        "xds_rounds.py", "--services", "200", "--sidecars", "100", "--rounds", "3", "--check",
        within=120,
    )  # fmt: skip
    assert code == 0, out
    for kind in ("endpoint", "route after endpoint", "route after route"):
        assert re.search(rf"^{kind} round: +min .* the baseline, n=3\)$", out, re.M), out
    assert re.search(r"^CHECK ok: all 110 proxies hold a fresh translation$", out, re.M), out
