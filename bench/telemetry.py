"""Telemetry ingestion: access-log entries per second per core with full aggregation.

A synthetic gRPC ALS client in its own process replays realistic HTTP entries (built as
Envoy fills them: node per stream, common properties with the upstream cluster and host,
the peer certificate's URI SAN on inbound entries, timings, route name, request and
response sizes; outbound and inbound loggers of many sidecars) in batches against

1. a baseline server in its own process that only decodes each message and counts its
   entries (grpc.aio, the same servicer signature), and
2. a real ``gossamer telemetry serve`` process (records, minute buckets, sketches, the
   flusher writing to SQLite),

and prints, for each, the server's CPU seconds per entry (from /proc) and entries per
second per core (entries / server CPU seconds), and the ratio of the two in the same run.
The service must have counted exactly every entry (``/v1/ingestion``), else the bench fails.

    .venv/bin/python bench/telemetry.py [--entries 300000] [--batch 100] [--streams 4]

``--chain [ARGS...]`` runs ``bench/telemetry_chain.py`` instead: Envoy CPU per request of a
strict-mTLS sidecar chain with telemetry on vs off in the same run, by source.

Results: docs/benchmarks.md, "Telemetry ingestion".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_seconds, cpu_tick

METHOD = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs"
TARGET_PER_CORE = 35_000


# -- the client (its own process) ---------------------------------------------------------


def build_streams(streams: int, entries: int, batch: int, seed: int = 5) -> list[list[bytes]]:
    """Serialised messages per stream: the first carries the node and log name."""
    from envoy.config.core.v3 import base_pb2

    from gossamer.testing.telemetry import batch as batch_message
    from gossamer.testing.telemetry import first_message, http_entry
    from gossamer.translate.names import outbound_cluster
    from gossamer.types import ProxyIdentity

    rng = random.Random(seed)
    services = [f"svc-{i}" for i in range(20)]
    now = int(time.time())
    out: list[list[bytes]] = []
    per_stream = entries // streams
    for s in range(streams):
        me = services[s % len(services)]
        who = ProxyIdentity("sidecar", "default", f"{me}-{s}", service=me)
        log_name = "inbound" if s % 2 else "outbound"
        pool = []
        for i in range(500):  # distinct entries to draw from, as a real proxy's mix
            other = rng.choice(services)
            status = rng.choices([200, 201, 404, 503, 0], [80, 8, 6, 5, 1])[0]
            common = {
                "status": status,
                "latency_ms": rng.lognormvariate(2.5, 0.9),
                "route_name": f"r{i % 8}",
                "method": rng.choice([base_pb2.GET, base_pb2.POST]),
                "start_s": now - rng.randrange(0, 50),
                "upstream": (f"127.0.0.{2 + i % 9}", 8080),
                "path": f"/api/items/{i}",
            }
            if log_name == "outbound":
                entry = http_entry(
                    cluster=outbound_cluster(("default", other), "http"),
                    attempts=1 + (i % 17 == 0),
                    tags={"gossamer.upstream_peer": f"spiffe://mesh/ns/default/sa/{other}"},
                    **common,
                )
            else:
                entry = http_entry(
                    cluster="inbound|http",
                    peer_uri=f"spiffe://mesh/ns/default/sa/{other}" if i % 10 else None,
                    **common,
                )
            pool.append(entry)
        messages: list[bytes] = []
        for n in range(0, per_stream, batch):
            chunk = [pool[(n + k) % len(pool)] for k in range(min(batch, per_stream - n))]
            msg = first_message(who, log_name, chunk) if n == 0 else batch_message(chunk)
            messages.append(msg.SerializeToString())
        out.append(messages)
    return out


async def client(target: str, streams: int, entries: int, batch: int) -> None:
    import grpc

    prepared = build_streams(streams, entries, batch)
    sent = sum(len(m) for m in prepared)
    print(json.dumps({"ready": sent}), flush=True)
    sys.stdin.readline()  # the parent reads the server's CPU, then says go
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.stream_stream(
            METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        started = time.perf_counter()

        async def one(messages: list[bytes]) -> None:
            async def requests() -> AsyncIterator[bytes]:
                for m in messages:
                    yield m

            async for _ in call(requests()):
                pass

        await asyncio.gather(*(one(m) for m in prepared))
        elapsed = time.perf_counter() - started
    print(json.dumps({"elapsed": elapsed, "entries": entries // streams * streams}), flush=True)


# -- the baseline server: decode and count only (its own process) -------------------------


async def baseline_server(port: int) -> None:
    import grpc
    from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

    class Counting(als_pb2_grpc.AccessLogServiceServicer):  # type: ignore[misc]
        entries = 0

        async def StreamAccessLogs(self, request_iterator, context):  # type: ignore[no-untyped-def]
            async for message in request_iterator:
                for _entry in message.http_logs.log_entry:
                    Counting.entries += 1
            return als_pb2.StreamAccessLogsResponse()

    server = grpc.aio.server()
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(Counting(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("listening", flush=True)
    await server.wait_for_termination()


# -- the parent -----------------------------------------------------------------------------


def _free_port() -> int:
    from gossamer.testing.ports import free_port

    return free_port()


async def _started(argv: list[str], marker: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert proc.stdout is not None
    async with asyncio.timeout(60):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise RuntimeError(f"{argv[:6]} exited before listening")
            if marker in line:
                return proc


async def measure(name: str, server_pid: int, port: int, args: argparse.Namespace) -> float:
    """Run the client against ``port``; the server's CPU seconds per entry."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", f"127.0.0.1:{port}",
        "--entries", str(args.entries), "--batch", str(args.batch),
        "--streams", str(args.streams),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    json.loads(await proc.stdout.readline())  # built its messages: not measured
    before = cpu_seconds(server_pid)
    proc.stdin.write(b"go\n")
    await proc.stdin.drain()
    done = json.loads(await proc.stdout.readline())
    cpu = cpu_seconds(server_pid) - before
    await proc.wait()
    n = done["entries"]
    # a small run may use less than one clock tick of CPU: count it as one (an upper bound)
    below = cpu < cpu_tick()
    per_entry = max(cpu, cpu_tick()) / n
    print(
        f"{name:<36} {n} entries in {done['elapsed']:.2f} s wall ({n / done['elapsed']:,.0f}/s), "
        f"server CPU {'< ' if below else ''}{max(cpu, cpu_tick()):.2f} s = "
        f"{'< ' if below else ''}{per_entry * 1e6:.1f} us/entry = "
        f"{1 / per_entry:,.0f} entries/s per core",
        flush=True,
    )
    return float(per_entry)


async def parent(args: argparse.Namespace) -> int:
    import httpx

    me = [sys.executable, __file__]
    port = _free_port()
    base = await _started([*me, "--baseline-server", str(port)], "listening")
    try:
        base_cost = await measure("baseline (decode + count)", base.pid, port, args)
    finally:
        base.terminate()
        await base.wait()
    with tempfile.TemporaryDirectory(prefix="telemetry-bench-") as tmp:
        grpc_port, http_port = _free_port(), _free_port()
        serve = await _started(
            [
                sys.executable, "-c", "from gossamer.cli.main import run; run()",
                "telemetry", "serve", "--listen", f"127.0.0.1:{grpc_port}",
                "--http", f"127.0.0.1:{http_port}", "--data", str(Path(tmp) / "t.sqlite"),
                "--insecure-no-auth",
            ],
            "gossamer telemetry: access logs on",
        )  # fmt: skip
        try:
            cost = await measure("telemetry serve (full aggregation)", serve.pid, grpc_port, args)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as c:
                ingestion = (await c.get("/v1/ingestion")).json()
                topology = (await c.get("/v1/topology", params={"since": "5m"})).json()
        finally:
            serve.terminate()
            await serve.wait()
    expected = args.entries // args.streams * args.streams
    print(
        f"service counted {ingestion['requests']} requests of {ingestion['entries']} entries "
        f"(sent {expected}); topology: {len(topology['nodes'])} nodes, "
        f"{len(topology['edges'])} edges"
    )
    print(f"full aggregation / decode only: CPU per entry {cost / base_cost:.2f}x")
    per_core = 1 / cost
    verdict = "met" if per_core >= TARGET_PER_CORE else "NOT met"
    print(f"target >= {TARGET_PER_CORE:,} entries/s per core: {verdict} ({per_core:,.0f})")
    return 0 if ingestion["entries"] == ingestion["requests"] == expected else 1


def main() -> int:
    if "--chain" in sys.argv[1:]:
        import telemetry_chain

        at = sys.argv.index("--chain")
        telemetry_chain.main(sys.argv[1:at] + sys.argv[at + 1 :])
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=300_000)
    p.add_argument("--batch", type=int, default=100, help="entries per gRPC message")
    p.add_argument("--streams", type=int, default=4, help="concurrent ALS streams (proxies)")
    p.add_argument("--client", help=argparse.SUPPRESS)
    p.add_argument("--baseline-server", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if args.client:
        asyncio.run(client(args.client, args.streams, args.entries, args.batch))
        return 0
    if args.baseline_server:
        asyncio.run(baseline_server(args.baseline_server))
        return 0
    return asyncio.run(parent(args))


if __name__ == "__main__":
    raise SystemExit(main())
