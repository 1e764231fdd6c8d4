"""``bench/chaos.py`` in short: every fault once (all replicas down for 3 s, faults lasting
1 s, certificates living 1 minute) under load through a gateway and east-west through
sidecars of real agents, on a 3-member etcd with 3 control-plane replicas sharing one
telemetry and one rate-limit service. Fails when a request failed, an acknowledged write is
missing from a replica, or a scenario did not recover (its write never served)."""

from __future__ import annotations

import re

import pytest
from tests.integration.bench.bench_run import run_bench

from gossamer.testing.etcd import etcd_installed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        not etcd_installed(), reason="no etcd binary (Debian's etcd-server; scripts/install)"
    ),
]

SCENARIOS = [
    "replica-killed",
    "singleton-leader-killed",
    "all-replicas-down",
    "telemetry-restarted",
    "ratelimit-restarted",
    "agent-killed",
    "certificates-renewed",
    "etcd-member-restarted",
    "etcd-leader-killed",
    "backend-killed",
]


async def test_every_fault_under_load_fails_no_request_and_loses_no_write() -> None:
    args = ("--down", "3", "--settle", "1", "--certificate-ttl", "1m")
    code, out = await run_bench("chaos.py", *args, within=540)
    summary = re.search(r"^CHAOS (.*)$", out, re.M)
    assert summary is not None, out[-6000:]
    fields = dict(kv.split("=") for kv in summary.group(1).split())
    assert fields["scenarios"] == str(len(SCENARIOS)), out[-6000:]
    for name in SCENARIOS:
        assert re.search(rf"^{name} +sent +\d+ +failed +0 +recover", out, re.M), out[-6000:]
    assert (fields["failed"], fields["lost"]) == ("0", "0"), out[-6000:]
    assert int(fields["sent"]) > 100 and fields["writes"] == str(len(SCENARIOS)), out
    # (a figure, not a verdict: a SIGKILLed service loses what it had not flushed)
    assert re.search(r"^telemetry: counted \d+ of \d+ requests to the gateway", out, re.M), out
    renewed = re.search(r"^certificates renewed during the run: (\d+) ", out, re.M)
    assert renewed is not None and int(renewed.group(1)) >= 3, out[-6000:]
    east_west = re.search(r"^east-west: (\d+) of (\d+) connections from front", out, re.M)
    assert east_west is not None and int(east_west.group(1)) > 0, out[-6000:]  # (strict mTLS)
    assert code == 0, out[-6000:]
