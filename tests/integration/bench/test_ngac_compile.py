"""``bench/ngac.py --enforcement`` (``bench/ngac_compile.py``) runs end to end at small
sizes: both compile sizes and their ratio are printed; a real control plane serves the
enforcing mesh, and every one-edge change (as an AccessPolicy apply, made in place, and as
an administrative batch) reaches the simulated sidecars and the real Envoy, ACKed, the
Envoy holding exactly the route table the control plane sent."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[3]
CHANGES = 4


async def test_ngac_enforcement_bench_runs_end_to_end() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "ngac.py"), "--enforcement",
        "--services", "40", "--identities", "400", "--base-services", "10",
        "--base-identities", "100", "--changes", str(CHANGES), "--watched", "2",
        "--timeout", "20", "--budget", "120",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT / "bench",
    )  # fmt: skip
    try:
        async with asyncio.timeout(200):
            out_b, _ = await proc.communicate()
    finally:
        if proc.returncode is None:  # SIGINT: the bench stops its Envoy and servers on the way out
            proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(30):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
    out = out_b.decode()
    assert proc.returncode == 0, out[-4000:]
    sizes = re.findall(
        r"^compile ([\d,]+) services x ([\d,]+) identities: .* every list", out, re.M
    )
    assert sizes == [("10", "100"), ("40", "400")], out[-4000:]
    assert re.search(r"^ratio every list 40x400 / 10x100: [\d.]+x for 16x", out, re.M), out
    assert re.search(r"^target every list <= 5 s: met", out, re.M), out[-4000:]
    phases = re.findall(
        r"^one edge -> ACKed by 2 simulated sidecars, (.+?): p50 .*\(n=(\d+)\)", out, re.M
    )
    assert phases == [
        ("AccessPolicy apply", str(CHANGES)),
        ("administrative batch (in place)", str(CHANGES)),
    ], out[-4000:]
    # the AccessPolicy applies were made in place, none rebuilt the graph
    engine = re.findall(r"^  the engine: (\d+) policy changes in place, (\d+) rebuilt", out, re.M)
    assert engine[0] == (str(CHANGES), "0"), out[-4000:]
    envoy = re.findall(r"^  the real Envoy sidecar, same changes: p50 .*\(n=(\d+)\)", out, re.M)
    assert envoy == [str(CHANGES)] * 2, out[-4000:]
    assert len(re.findall(r"^  worst event-loop stall meanwhile: [\d.]+ ms", out, re.M)) == 2
    assert "real Envoy holds the inbound route table sent (as JSON): True" in out, out[-4000:]
