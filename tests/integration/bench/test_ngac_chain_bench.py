"""``bench/ngac_chain.py`` runs end to end with tiny counts: a real control plane, two real
agents and their four Envoys (strict mTLS), a service with enforcement on and one with it
off; the enforcing chain is shown to deny a path the graph does not grant before anything
is measured, every measured request is answered, the enforcing callee's RBAC decided each,
and the enforce/off ratio is printed at both connection counts."""

from __future__ import annotations

import re

import pytest
from tests.integration.bench.bench_run import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(300)]


async def test_ngac_chain_bench_runs_end_to_end() -> None:
    code, out = await run_bench(
        "ngac_chain.py",
        "--duration", "30", "--requests", "200", "--rounds", "1", "--identities", "50",
        within=240,
    )  # fmt: skip
    assert code == 0, out[-4000:]
    assert "enforce denies /admin (403), allows /bench; off allows both" in out, out[-4000:]
    # the compiled list holds the caller and the 50 other identities
    assert "the enforcing callee's route table names 51 callers" in out, out[-4000:]
    runs = re.findall(r"^round 0 (\w+)\s+c=\s*(\d+):\s+(\d+) req .* errors (\d+)", out, re.M)
    assert sorted((chain, int(c)) for chain, c, _, _ in runs) == sorted(
        (chain, c) for chain in ("direct", "off", "enforce") for c in (1, 16)
    ), out[-4000:]
    assert all((int(n), int(e)) == (200, 0) for _, _, n, e in runs), out[-4000:]
    counted = re.search(r"the callee's RBAC allowed (\d+) requests; (\d+) measured", out)
    assert counted is not None and int(counted.group(1)) >= int(counted.group(2)) == 400, out
    assert len(re.findall(r"enforce/off: CPU/req [\d.]+x \(target <= 1.1x", out)) == 2, out
