"""Data-plane cost: client -> sidecar -> sidecar -> backend, Gossamer's config vs a hand chain.

Run: ``.venv/bin/python bench/dataplane.py [--duration 5] [--rounds 2]`` (needs ``wrk``:
``apt-get install -y wrk``).

Both chains run at once (4 Envoys, ``--concurrency 1`` each) and are measured interleaved,
round by round, at 1 and 16 connections with ``wrk -t1``:
  * gossamer: the control plane (in this process) configures two sidecars over ADS;
  * hand: two Envoys with a minimal static config and HTTP/1.1 between them.
The backend is a raw asyncio HTTP/1.1 responder in its own process. For each run: rps,
p50/p99 latency (wrk), and the CPU (utime+stime from /proc/PID/stat) both Envoys of the chain
used, per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import cpu_seconds
from envoy.config.bootstrap.v3 import bootstrap_pb2

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.testing.controlplane import apply_yaml, mesh_envoy, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.testing.resources import http_listener, route_configuration, static_cluster
from gossamer.types import ProxyIdentity

BACKEND = r"""
import asyncio, sys
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.buf = b""
    def data_received(self, d):
        self.buf += d
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rindex(b"\r\n\r\n") + 4:]
            self.t.write(RESP * n)
async def main():
    s = await asyncio.get_running_loop().create_server(P, sys.argv[1], int(sys.argv[2]))
    print("ready", flush=True)
    await s.serve_forever()
asyncio.run(main())
"""


@dataclass
class Sample:
    chain: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    errors: int


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _latency(out: str, pct: str) -> float:
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


async def wrk(url: str, connections: int, duration: float) -> tuple[int, float, float, float, int]:
    """(requests, rps, p50 ms, p99 ms, non-2xx + socket errors) from one bounded wrk run."""
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out_b, _ = await asyncio.wait_for(proc.communicate(), duration + 30)
    out = out_b.decode()
    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if total is None or rps is None:
        raise RuntimeError(f"wrk output not understood:\n{out}")
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    p50, p99 = _latency(out, "50"), _latency(out, "99")
    return int(total.group(1)), float(rps.group(1)), p50, p99, errors


def static_envoy(name: str, listen: tuple[str, int], upstream: tuple[str, int]) -> EnvoyProcess:
    """One hop of the hand chain: an HTTP/1.1 listener routing everything to one host."""
    boot = bootstrap_pb2.Bootstrap()
    boot.node.id = name
    boot.node.cluster = name
    boot.static_resources.listeners.append(
        http_listener(f"{name}-in", listen, route_configuration(f"{name}-routes", {"*": "up"}))
    )
    boot.static_resources.clusters.append(static_cluster("up", [upstream]))
    return EnvoyProcess(boot, concurrency=1, log_level="warning", name=name)


async def wait_ok(url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        total, _, _, _, errors = await wrk(url, 1, 1)
        if total > 0 and errors == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} does not answer 200 within {within:g} s")
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace) -> list[Sample]:
    with tempfile.TemporaryDirectory(prefix="gossamer-dp-") as tmp:
        backend_addr = ("127.0.0.3", free_port("127.0.0.3"))
        backend = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            BACKEND,
            *map(str, backend_addr),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert backend.stdout is not None
            await asyncio.wait_for(backend.stdout.readline(), 10)
            async with running_control_plane(Path(tmp) / "cp") as app:
                local = ("127.0.0.2", free_port("127.0.0.2"))
                mesh = (
                    ""
                    if args.retries
                    else (
                        "apiVersion: gossamer.dev/v1\nkind: Mesh\nmetadata: {name: default}\n"
                        "spec: {defaults: {retries: {attempts: 0}}}\n---\n"
                    )
                )
                await apply_yaml(
                    app,
                    mesh
                    + f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: client}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: backend}}
spec: {{ports: [{{name: http, port: 9080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: client-1}}
spec:
  service: client
  address: 127.0.0.2
  ports: [{{port: {free_port("127.0.0.2")}, appPort: 1}}]
  dependencies: [{{service: backend, localAddress: 127.0.0.2, localPort: {local[1]}}}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: backend-1}}
spec:
  service: backend
  address: 127.0.0.3
  appAddress: {backend_addr[0]}
  ports: [{{port: {free_port("127.0.0.3")}, appPort: {backend_addr[1]}}}]
""",
                    wait=False,
                )
                hand_front = ("127.0.0.4", free_port("127.0.0.4"))
                hand_back = ("127.0.0.5", free_port("127.0.0.5"))
                async with contextlib.AsyncExitStack() as stack:
                    g1 = await stack.enter_async_context(
                        mesh_envoy(app, ProxyIdentity("sidecar", "default", "client-1"))
                    )
                    g2 = await stack.enter_async_context(
                        mesh_envoy(app, ProxyIdentity("sidecar", "default", "backend-1"))
                    )
                    h2 = await stack.enter_async_context(
                        static_envoy("hand-back", hand_back, backend_addr)
                    )
                    h1 = await stack.enter_async_context(
                        static_envoy("hand-front", hand_front, hand_back)
                    )
                    chains = {
                        "gossamer": (f"http://{local[0]}:{local[1]}/", (g1.pid, g2.pid)),
                        "hand": (f"http://{hand_front[0]}:{hand_front[1]}/", (h1.pid, h2.pid)),
                    }
                    for url, _ in chains.values():
                        await wait_ok(url)
                        await wrk(url, 16, 1.0)  # warm-up: connections, pools
                    samples: list[Sample] = []
                    for r in range(args.rounds):
                        for conns in (1, 16):
                            order = list(chains) if r % 2 == 0 else list(reversed(chains))
                            for name in order:
                                url, pids = chains[name]
                                cpu0 = sum(cpu_seconds(p) for p in pids)
                                total, rps, p50, p99, errors = await wrk(url, conns, args.duration)
                                cpu = sum(cpu_seconds(p) for p in pids) - cpu0
                                s = Sample(
                                    name, conns, rps, p50, p99, cpu / max(total, 1) * 1e6, errors
                                )
                                print(
                                    f"round {r} {name:8s} c={conns:2d}: {rps:8.0f} rps  "
                                    f"p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  "
                                    f"{s.cpu_us_per_request:6.1f} us CPU/req  "
                                    f"errors {errors}",
                                    flush=True,
                                )
                                samples.append(s)
                    return samples
        finally:
            backend.terminate()
            await backend.wait()


def report(samples: list[Sample]) -> None:
    print("\nmedians over rounds (Envoy CPU = both Envoys of the chain):")
    print(f"{'conns':>5} {'chain':>9} {'rps':>8} {'p50 ms':>7} {'p99 ms':>7} {'us CPU/req':>10}")
    for conns in (1, 16):
        med: dict[str, dict[str, float]] = {}
        for chain in ("gossamer", "hand"):
            ss = [s for s in samples if s.chain == chain and s.connections == conns]
            med[chain] = {
                "rps": statistics.median(s.rps for s in ss),
                "p50": statistics.median(s.p50_ms for s in ss),
                "p99": statistics.median(s.p99_ms for s in ss),
                "cpu": statistics.median(s.cpu_us_per_request for s in ss),
            }
            m = med[chain]
            print(
                f"{conns:5d} {chain:>9} {m['rps']:8.0f} {m['p50']:7.3f} {m['p99']:7.3f} "
                f"{m['cpu']:10.1f}"
            )
        g, h = med["gossamer"], med["hand"]
        target = 0.8 if conns == 16 else 1.05
        ratio = g["cpu"] / h["cpu"]
        print(
            f"      gossamer/hand: CPU/req {ratio:.2f}x (target <= {target}x: "
            f"{'met' if ratio <= target else 'MISSED'}), rps {g['rps'] / h['rps']:.2f}x, "
            f"p50 {g['p50'] / h['p50']:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--no-retries",
        dest="retries",
        action="store_false",
        help="turn off the mesh's default retry policy (to measure its cost)",
    )
    args = parser.parse_args()
    args.duration = max(1.0, min(args.duration, 30.0))
    args.rounds = max(1, min(args.rounds, 10))
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    report(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
