"""``bench/telemetry.py`` runs end to end with tiny counts: the synthetic ALS client in its
own process against the decode-only baseline and a real ``gossamer telemetry serve``; the
service counts every entry it was sent (the bench fails otherwise) and both figures and
their ratio are printed."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[3]


async def test_telemetry_bench_runs_end_to_end() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "telemetry.py"),
        "--entries", "3000", "--batch", "50", "--streams", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        async with asyncio.timeout(150):
            out_b, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out = out_b.decode()
    assert proc.returncode == 0, out[-4000:]
    assert "service counted 3000 requests of 3000 entries (sent 3000)" in out, out[-4000:]
    assert len(re.findall(r"us/entry = [\d,]+ entries/s per core", out)) == 2, out[-4000:]
    assert re.search(r"full aggregation / decode only: CPU per entry [\d.]+x", out), out[-4000:]
