"""``bench/mtls_chain.py`` runs end to end with tiny counts: two real agents and their four
Envoys, a real control plane, the static mTLS pair, and the load generator; every chain
answers every request, the mTLS chains really handshake (the bench refuses to measure
otherwise), and the table with the ratios against the static chain is printed."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[3]


async def test_mtls_chain_bench_runs_end_to_end() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "mtls_chain.py"),
        "--duration", "30", "--requests", "200", "--rounds", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(240):
            out_b, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out = out_b.decode()
    assert proc.returncode == 0, out[-4000:]
    # one measured line per chain and connection count, each with all 200 requests answered
    runs = re.findall(r"^round 0 (\w+)\s+c=\s*(\d+):\s+(\d+) req .* errors (\d+)", out, re.M)
    assert sorted((chain, int(c)) for chain, c, _, _ in runs) == sorted(
        (chain, c) for chain in ("direct", "plain", "mtls", "static") for c in (1, 16)
    ), out[-4000:]
    assert all((int(n), int(e)) == (200, 0) for _, _, n, e in runs), out[-4000:]
    # the summary compares the Gossamer mTLS chain with the static one at both counts
    # (a short run may count no CPU clock tick for a chain: no ratio then)
    ratios = r"mtls/static: CPU/req ([\d.]+x|n/a \(no CPU clock tick counted\)) .* p99 [\d.]+x"
    assert len(re.findall(ratios, out)) == 2, out[-4000:]
