"""``bench/fuzz_config.py`` at a small size: hostile meshes through our validation, the
translator and ``envoy --mode validate``. Fails on any defect the bench counts: a config
Envoy rejects after our validation accepted it, a crash, a translation refused after
validation, or a rejection that names no field or line."""

from __future__ import annotations

import re

import pytest
from tests.integration.bench.bench_run import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]


async def test_no_config_envoy_rejects_after_our_validation_accepted_it() -> None:
    code, out = await run_bench("fuzz_config.py", "--cases", "150", "--seconds", "25", within=60)
    summary = re.search(
        r"^FUZZ cases=(\d+) rejected=(\d+) accepted=(\d+) proxies=(\d+) .*", out, re.M
    )
    assert summary is not None, out[-5000:]
    cases, rejected, accepted, proxies = map(int, summary.groups())
    fields = dict(kv.split("=") for kv in summary.group(0).split()[1:])
    assert {k: fields[k] for k in ("envoy_rejected", "crashes", "translate_errors", "unnamed")} == {
        "envoy_rejected": "0",
        "crashes": "0",
        "translate_errors": "0",
        "unnamed": "0",
    }, out[-8000:]
    assert code == 0, out[-5000:]
    # the run did what it says: hostile cases refused, clean ones through Envoy
    assert cases >= 50 and rejected > 0 and accepted > 0 and proxies > 0, summary.group(0)
