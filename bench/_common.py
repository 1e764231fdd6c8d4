"""Small helpers shared by the benchmarks: percentiles, process CPU and memory from /proc,
a bounded HTTP load generator, and the options and exit of the chain benches."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0..100), nearest-rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summary_ms(values: list[float]) -> str:
    """``p50 / p99 / max`` of durations given in seconds, printed in milliseconds."""
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 50) * 1e3:7.2f} ms  p99 {percentile(values, 99) * 1e3:7.2f} ms"
        f"  max {max(values) * 1e3:7.2f} ms  mean {statistics.fmean(values) * 1e3:7.2f} ms"
        f"  (n={len(values)})"
    )


def cpu_tick() -> float:
    """The resolution of ``cpu_seconds``: one clock tick (10 ms on Linux)."""
    return 1 / _TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc/PID/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces; the fields after it are fixed.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """A memory field of /proc/PID/status (VmRSS, VmHWM, ...) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no {field} line")


# -- a closed-loop HTTP/1.1 load generator in its own process -----------------------------

#: Run as ``python -c LOADER HOST PORT CONNECTIONS MAX_REQUESTS MAX_SECONDS PID...``: keeps
#: CONNECTIONS keep-alive connections each with one request in flight until MAX_REQUESTS were
#: sent or MAX_SECONDS passed, and prints one JSON line: latencies (ms), errors, elapsed
#: seconds, and the CPU seconds the PIDs used between the first request and the last answer
#: (read here, so the loader's own start-up is not counted). Plain asyncio protocols (uvloop
#: when installed): no HTTP library between the clock and the socket. With ``BENCH_REQUESTS``
#: in its environment (JSON: a list of [path, {header: value}]) it sends those in turn
#: instead of ``GET /bench``.
LOADER = r"""
import asyncio, json, os, sys, time
host, port, conns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
max_requests, max_seconds = int(sys.argv[4]), float(sys.argv[5])
pids = [int(p) for p in sys.argv[6:]]
TICKS = os.sysconf("SC_CLK_TCK")
MIX = json.loads(os.environ.get("BENCH_REQUESTS") or '[["/bench", {}]]')
REQUESTS = [(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
             + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
            for path, headers in MIX]
def cpu():
    total = 0
    for pid in pids:
        raw = open(f"/proc/{pid}/stat").read()
        fields = raw[raw.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS
class Run:
    sent = 0; errors = 0; latencies = []; open = 0; deadline = 0.0
class Client(asyncio.Protocol):
    def __init__(self, run, done):
        self.run, self.done, self.buf, self.t0, self.waiting = run, done, b"", 0, False
    def connection_made(self, transport):
        self.transport = transport; self.run.open += 1; self.send()
    def send(self):
        run = self.run
        if run.sent >= max_requests or time.monotonic() >= run.deadline:
            self.transport.close(); return
        run.sent += 1
        self.waiting = True
        self.t0 = time.perf_counter_ns()
        self.transport.write(REQUESTS[run.sent % len(REQUESTS)])
    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0: return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length": length = int(value)
            if len(self.buf) < end + 4 + length: return
            self.buf = self.buf[end + 4 + length:]
            self.waiting = False
            if head[0].split()[1] == "200":
                self.run.latencies.append((time.perf_counter_ns() - self.t0) / 1e6)
            else:
                self.run.errors += 1
            self.send()
    def connection_lost(self, exc):
        if self.waiting: self.run.errors += 1
        self.run.open -= 1
        if self.run.open == 0 and not self.done.done(): self.done.set_result(None)
async def main():
    loop = asyncio.get_running_loop()
    run, done = Run(), loop.create_future()
    run.deadline = time.monotonic() + max_seconds
    cpu0, start = cpu(), time.monotonic()
    for _ in range(conns):
        await loop.create_connection(lambda: Client(run, done), host, port)
    try:
        await asyncio.wait_for(done, max_seconds + 30)
    except asyncio.TimeoutError:
        run.errors += run.open
    elapsed, cpu1 = time.monotonic() - start, cpu()
    print(json.dumps({"latencies_ms": run.latencies, "errors": run.errors, "sent": run.sent,
                      "elapsed": elapsed, "cpu_s": cpu1 - cpu0}))
try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""


@dataclass(frozen=True)
class LoadResult:
    """One bounded load run (or several pooled): latencies of the answered requests (ms),
    failures, and the CPU the watched PIDs used."""

    latencies_ms: list[float] = field(repr=False)
    errors: int
    seconds: float
    cpu_s: float

    @classmethod
    def pooled(cls, results: Sequence[LoadResult]) -> LoadResult:
        """All of ``results`` as one run (percentiles over every request, CPU summed)."""
        return cls(
            [x for r in results for x in r.latencies_ms],
            sum(r.errors for r in results),
            sum(r.seconds for r in results),
            sum(r.cpu_s for r in results),
        )

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    def ms(self, p: float) -> float:
        """The ``p``-th percentile latency in milliseconds."""
        return percentile(self.latencies_ms, p)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / max(self.requests, 1) * 1e6


async def http_load(
    address: tuple[str, int],
    connections: int,
    *,
    max_requests: int,
    max_seconds: float,
    pids: Sequence[int] = (),
    requests: Sequence[tuple[str, Mapping[str, str]]] = (),
) -> LoadResult:
    """Run ``LOADER`` against ``address`` (bounded by count and time) in its own process;
    ``requests``: (path, headers) to send in turn (default: ``GET /bench`` only)."""
    env = dict(os.environ)
    env.pop("BENCH_REQUESTS", None)
    if requests:
        env["BENCH_REQUESTS"] = json.dumps([[p, dict(h)] for p, h in requests])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOADER, address[0], str(address[1]), str(connections),
        str(max_requests), str(max_seconds), *map(str, pids),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        async with asyncio.timeout(max_seconds + 60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator exited {proc.returncode}: {err.decode()[-2000:]}")
    data = json.loads(out)
    return LoadResult(
        latencies_ms=[float(x) for x in data["latencies_ms"]],
        errors=int(data["errors"]),
        seconds=float(data["elapsed"]),
        cpu_s=float(data["cpu_s"]),
    )


def chain_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options of every chain bench (each run is bounded by count and by time)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--duration", type=float, default=3.0, help="max seconds per run")
    parser.add_argument("--requests", type=int, default=50_000, help="max requests per run")
    parser.add_argument("--rounds", type=int, default=6)
    return parser


def chain_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse, keep every bound within reason, and print what the figures depend on."""
    args = parser.parse_args(argv)
    args.duration = max(0.2, min(args.duration, 60.0))
    args.requests = max(1, min(args.requests, 1_000_000))
    args.rounds = max(1, min(args.rounds, 10))
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"python {sys.version.split()[0]}; load average at start {load}", flush=True)
    return args


def exit_if_failed(errors: Iterable[int]) -> None:
    """Exit non-zero when any measured request failed."""
    failed = sum(errors)
    if failed:
        sys.exit(f"{failed} requests failed (see the errors column)")
