"""TrafficPolicy load balancing and health checks through a real caller Envoy: ring hash
keeps each key on one instance, and a sidecar-less instance failing its active health
check leaves the rotation (and comes back when it passes again)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from traffic_mesh import ScriptedBackend, caller, traffic_policy

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_ring_hash_keeps_each_key_on_one_instance(tmp_path: Path) -> None:
    backends = [ScriptedBackend(f"r{i}", f"127.0.0.{3 + i}") for i in range(3)]
    policy = traffic_policy(loadBalancer={"algorithm": "ringHash", "hash": {"header": "x-user"}})
    async with backends[0], backends[1], backends[2], caller(tmp_path, backends, policy) as mesh:
        homes: dict[str, Counter[str]] = {}
        for user in range(30):
            homes[f"user-{user}"] = await mesh.reached(8, **{"x-user": f"user-{user}"})
        spread = {u: seen for u, seen in homes.items() if len(seen) != 1}
        assert spread == {}, "every key stays on one instance"
        used = {next(iter(seen)) for seen in homes.values()}
        assert len(used) >= 2, "keys still spread over the instances"


async def test_a_sidecar_less_instance_failing_its_health_check_leaves_the_rotation(
    tmp_path: Path,
) -> None:
    a = ScriptedBackend("a", "127.0.0.3")
    b = ScriptedBackend("b", "127.0.0.4")
    check = {
        "http": {"path": "/healthz"},
        "interval": "200ms",
        "timeout": "150ms",
        "unhealthyThreshold": 1,
        "healthyThreshold": 1,
    }
    async with a, b, caller(tmp_path, [a, b], traffic_policy(healthCheck=check)) as mesh:
        healthy = "membership_healthy"
        await mesh.envoy.wait_for(lambda: _is(mesh.stat(healthy), 2), 20, what="both healthy")
        assert set(await mesh.reached(20)) == {"a", "b"}
        b.healthy = False  # the app still answers requests, only its check fails
        await mesh.envoy.wait_for(lambda: _is(mesh.stat(healthy), 1), 20, what="b unhealthy")
        before = b.served
        assert await mesh.reached(40) == {"a": 40}
        assert b.served == before and b.health_checks > 0
        b.healthy = True
        await mesh.envoy.wait_for(lambda: _is(mesh.stat(healthy), 2), 20, what="b back")

        async def b_serves() -> bool:
            return "b" in await mesh.reached(10)

        # (Envoy's workers pick the host up a moment after the check passes)
        await mesh.envoy.wait_for(b_serves, 20, what="b back in the rotation")


async def _is(value: object, wanted: int) -> bool:
    return await value == wanted  # type: ignore[misc]
