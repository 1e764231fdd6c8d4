"""``bench/telemetry.py --chain`` runs end to end with tiny counts: three control planes (one
with ``--telemetry off``, two with the supervised telemetry child, requests logged over gRPC
with tracing off and at 100 %), each with two real agents and a strict-mTLS sidecar chain;
every measured request is answered, each 'on' service counted exactly the requests sent in
both views, the 100 % chain's Envoys sent two spans per request, and the ratios to off are
printed. (The ``stats`` configuration, counts from Envoy's stats alone, is the bench's too;
its exact counts are tested in tests/integration/telemetry, and a fourth chain of two
agents cost ~35 s of the suite.)"""

from __future__ import annotations

import re

import pytest
from tests.integration.bench.bench_run import run_bench

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(300),
]

REQUESTS = 200


async def test_telemetry_chain_bench_runs_end_to_end() -> None:
    code, out = await run_bench(
        "telemetry.py", "--chain",
        "--configs", "off,logs,trace100", "--duration", "30", "--requests", str(REQUESTS),
        "--rounds", "1",
        within=240,
    )  # fmt: skip
    assert code == 0, out[-4000:]
    runs = re.findall(r"^round 0 (\w+)\s+c=\s*(\d+):\s+(\d+) req .* errors (\d+)", out, re.M)
    assert sorted((config, int(c)) for config, c, _, _ in runs) == sorted(
        (config, c) for config in ("off", "logs", "trace100") for c in (1, 16)
    ), out[-4000:]
    assert all((int(n), int(e)) == (REQUESTS, 0) for _, _, n, e in runs), out[-4000:]
    sent = 2 * REQUESTS
    for config in ("logs", "trace100"):
        assert f"exact: {config} sent {sent}, counted client {sent} server {sent} (exact)" in out
    spans = re.search(r"exact: trace100 .* spans_sent (\d+) ", out)
    # two spans per request (caller's outbound, callee's inbound), give or take the few an
    # exporter holds until its next flush
    assert spans is not None and abs(int(spans.group(1)) - 2 * sent) <= 10, out[-4000:]
    assert re.search(r"exact: logs .* spans_sent 0 ", out), out[-4000:]
    for conns in (1, 16):
        assert re.search(rf"c={conns} logs/off: CPU/req [\d.]+x \(target <= 1.1x", out)
        assert re.search(rf"c={conns} trace100/logs \(tracing alone\): CPU/req [\d.]+x", out)
