"""Checks per second per core of ``gossamer ratelimit serve`` (bounded).

Run: ``.venv/bin/python bench/ratelimit_checks.py [--checks 20000] [--concurrency 32]``

Starts the service twice, with counters in memory and in a real ``redis-server`` (on a
free loopback port), each with one rule; a grpc.aio client in this process sends
``ShouldRateLimit`` checks (one descriptor with a key, 100 distinct keys) keeping
``--concurrency`` in flight, at most ``--checks`` per run. CPU = utime + stime of the
service process over the run (Redis's own CPU is shown apart). Prints checks/s of wall
time, service CPU µs per check and checks per CPU-second (the per-core cap).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import grpc
from _common import cpu_seconds
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from gossamer.envoy.process import ManagedProcess
from gossamer.polling import wait_until
from gossamer.testing.ports import free_port
from gossamer.testing.redis import running_redis

RULE = "bench/api/limited"


@contextlib.asynccontextmanager
async def service(workdir: Path, redis: str | None):  # type: ignore[no-untyped-def]
    rules = workdir / "rules.json"
    rule = {"id": RULE, "requests": 1_000_000_000, "unit": "second", "key": "header"}
    rules.write_text(json.dumps({"version": "1", "rules": [rule]}))
    port = free_port()
    argv = [sys.executable, "-c", "from gossamer.cli.main import run; run()", "ratelimit"]
    argv += ["serve", "--listen", f"127.0.0.1:{port}", "--rules", str(rules)]
    argv += ["--redis", redis, "--redis-timeout", "1"] if redis else []
    proc = ManagedProcess(argv, log_path=workdir / f"rl-{port}.log", name="ratelimit")
    await proc.start()
    try:

        async def up() -> bool:
            return "listening on" in proc.log_tail()

        await wait_until(up, timeout=30, what="ratelimit serve")
        yield proc, f"127.0.0.1:{port}"
    finally:
        await proc.stop(grace=5)


async def drive(target: str, checks: int, concurrency: int) -> tuple[int, float, int]:
    entry = ratelimit_pb2.RateLimitDescriptor.Entry
    requests = [
        rls_pb2.RateLimitRequest(
            domain="gossamer",
            descriptors=[
                ratelimit_pb2.RateLimitDescriptor(
                    entries=[
                        entry(key="gossamer-rule", value=RULE),
                        entry(key="key", value=f"k{i}"),
                    ]
                )
            ],
        )
        for i in range(100)
    ]
    done = 0
    over = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        await stub.ShouldRateLimit(requests[0])  # connected and warm
        start = time.perf_counter()

        async def worker(w: int) -> None:
            nonlocal done, over
            i = w
            while done < checks:
                done += 1
                r = await stub.ShouldRateLimit(requests[i % 100])
                over += r.overall_code == rls_pb2.RateLimitResponse.OVER_LIMIT
                i += concurrency

        async with asyncio.TaskGroup() as tg:
            for w in range(concurrency):
                tg.create_task(worker(w))
        return done, time.perf_counter() - start, over


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        async with running_redis(work / "redis") as redis:
            assert redis.process is not None
            for name, url in (("memory", None), ("redis", redis.url)):
                async with service(work, url) as (proc, target):
                    cpu0, rcpu0 = cpu_seconds(proc.pid), cpu_seconds(redis.process.pid)
                    n, wall, over = await drive(target, args.checks, args.concurrency)
                    cpu = cpu_seconds(proc.pid) - cpu0
                    rcpu = cpu_seconds(redis.process.pid) - rcpu0
                    assert over == 0, f"{over} checks over a limit nobody reaches"
                    print(
                        f"{name:7s} {n} checks in {wall:.2f} s: {n / wall:,.0f}/s wall, "
                        f"service {cpu / n * 1e6:.0f} µs CPU/check = {n / cpu:,.0f} checks "
                        f"per CPU-second; redis {rcpu / n * 1e6:.0f} µs CPU/check",
                        flush=True,
                    )


if __name__ == "__main__":
    asyncio.run(main())
