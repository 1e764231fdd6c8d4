"""``bench/xds_scale.py`` at a small size: 200 services, 100 simulated proxies (98 sidecars
with 20 Zipf-distributed dependencies, 2 gateways) in two driver processes and one real
Envoy gateway, against one control plane (in delta, with telemetry and tracing on). The
bench checks at the end that every simulated proxy holds exactly the control plane's config
for it (re-serialised and hashed on the client's side) and that no change was lost; this
test fails when that check does, and when a measured phase reports a lost change. No
absolute figure is asserted."""

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

SMALL = ("--services", "200", "--proxies", "100", "--gateways", "2", "--repeats", "5")
#: a lost change or a proxy that never syncs fails within these (s), not at the test's timeout
BOUNDS = ("--timeout", "10", "--connect-timeout", "60")


# (delta with the telemetry service and tracing on: every gateway table built sampled)
@pytest.mark.parametrize("mode", [(), ("--delta", "--tracing", "5")], ids=["sotw", "delta-traced"])
async def test_no_change_lost_and_no_proxy_out_of_sync(mode: tuple[str, ...]) -> None:
    code, out = await run_bench(
        "xds_scale.py", *SMALL, *BOUNDS, "--real-envoys", "1", "--burst", "300", *mode, within=240
    )
    assert code == 0, out[-5000:]
    assert re.search(
        r"^CHECK ok: no lost change, no proxy out of sync: all 100 simulated proxies", out, re.M
    ), out[-5000:]
    # every measured change reached its proxies (the bench counts a miss as lost): alone,
    # then beside the real Envoy
    assert re.findall(r"lost: (\d+)", out) == ["0"] * 4, out[-5000:]
    assert re.search(r"^the same changes with the 1 real Envoy gateway", out, re.M), out[-5000:]
    assert re.search(r"changed, lost 0, sent only by the barrier 0", out), out[-5000:]
    assert re.search(r"reconnect storm: .* all in sync after", out), out[-5000:]
    # the transport's floor at the start and at the end, the largest change against it
    assert re.search(
        r"^  the endpoint change to \d+ proxies .* [\d.]+x and [\d.]+x the floor's p50", out, re.M
    ), out[-5000:]
    # the real Envoy gateway holds what the plane sent it
    m = re.search(r"real Envoy \S+ holds the plane's endpoints .* for (\d+)/(\d+)", out)
    assert m and m[1] == m[2] == "200", out[-5000:]
