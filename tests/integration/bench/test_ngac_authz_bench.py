"""``bench/ngac_authz.py`` runs end to end with tiny counts: real ``gossamer authz serve``
processes on a generated graph, the gRPC load client in its own process; every check is
answered (some allowed, some denied), and the summary against the warm target, the cold
figure, the bare grpc.aio and sync grpc floors and the 1-vs-2-process comparison are printed."""

from __future__ import annotations

import re

import pytest
from tests.integration.bench.bench_run import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(180)]


async def test_ngac_authz_bench_runs_end_to_end() -> None:
    code, out = await run_bench(
        "ngac_authz.py",
        "--services", "100", "--identities", "1000", "--duration", "0.5", "--rounds", "1",
        "--requests-set", "200", "--cold-requests", "300", "--latency-requests", "100",
        "--concurrency", "8",
        within=150,
    )  # fmt: skip
    assert code == 0, out[-4000:]
    runs = re.findall(
        r"^round 0 ([\w-]+)\s+servers=(\d) c=\s*(\d+):\s+(\d+) checks "
        r".* allowed (\d+) %  errors (\d+)",
        out,
        re.M,
    )
    assert sorted((kind, int(s)) for kind, s, *_ in runs) == [
        ("cold", 1), ("floor", 1), ("latency", 1), ("sync-floor", 1), ("warm", 1), ("warm", 2),
    ], out[-4000:]  # fmt: skip
    # every run answered checks, none failed, and the graph both allows and denies (the
    # floor, a constant answer, allows all)
    assert all(int(n) > 0 and int(e) == 0 for *_, n, a, e in runs), out
    assert all(0 < int(a) < 100 for kind, *_, a, _ in runs if "floor" not in kind), out
    assert [int(a) for kind, *_, a, _ in runs if "floor" in kind] == [100, 100], out
    # the cold run asked each of its 300 distinct checks exactly once
    assert [int(n) for kind, _, _, n, _, _ in runs if kind == "cold"] == [300], out
    # the servers recorded a decision for every check they answered (their --graph log)
    recorded = re.search(r"decisions recorded by the servers: (\d+) of (\d+) checks", out)
    assert recorded is not None and recorded.group(1) == recorded.group(2), out[-2000:]
    assert re.search(r"warm decisions/s on one core: \d+ .* \(target >= 3000: (met|MISSED)\)", out)
    assert re.search(r"cold decisions/s on one core: \d+", out), out
    assert re.search(r"decision point / grpc.aio floor: server CPU per check [\d.]+x", out), out
    assert re.search(r"decision point / sync grpc floor: server CPU per check [\d.]+x", out)
    assert re.search(r"2 processes / 1: checks/s [\d.]+x, server CPU per check [\d.]+x", out), out
