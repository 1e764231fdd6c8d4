"""The decision point's throughput: ext_authz checks per second of real ``gossamer authz
serve`` processes, cache warm and cold, one process and two.

Run: ``.venv/bin/python bench/ngac_authz.py [--duration 5] [--concurrency 32] [--rounds 2]``

The graph (``--services`` 1000, ``--identities`` 10k; a document like ``GET
/v1/authz/graph``'s, saved to a file and served with ``--graph FILE``): service identities
(SPIFFE ids) in teams, 1000 services (``svc:default/sN``) in zones, each with two prefix
attributes (``/api``, ``/admin``); teams and end-user groups granted methods on zones,
a prohibition on ``/admin`` for some teams; one token issuer whose ``groups`` claim maps
to 20 group attributes (end users are virtual users, no node per person).

Every check is shaped like the one a sidecar sends for a request with a verified token:
the caller's SPIFFE id (``source.principal``), the token's payload as ``jwt_authn``
metadata, the route's context extension ``service``, method, path and ``x-request-id``.
The load client (grpcio aio, pre-serialised requests, ``--concurrency`` calls in flight
over two channels per server, servers taken round robin) runs in its own process and
reads the servers' CPU (utime + stime) itself between its first call and its last answer.

  * latency: one call in flight, warm: what a check adds to a request (p50/p99);
  * warm: ``--requests-set`` checks asked over and over (each asked once before);
  * cold: a fresh process (graph just loaded, caches empty), every check a (caller,
    deciding attribute) pair and an end-user (groups, attribute) pair not asked before;
  * scaling: warm with 1 and then 2 processes (interleaved rounds);
  * floor: the same grpc.aio service answering a constant OK (no decision, no record):
    what the RPC alone costs, in the same run; sync-floor: the same on a synchronous
    ``grpc.server`` with ``authz serve``'s worker threads (what ``authz serve`` runs on).
"Per core" = checks / the servers' CPU seconds: what one core gives when the server is
CPU-bound (the client needs a core of its own, so two servers on a 2-core VM cannot show
2x in checks/s; they do show whether per-check CPU stays flat).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from _common import percentile

from gossamer.authz.graph import Graph, Kind
from gossamer.authz.prohibitions import Prohibition
from gossamer.authz.snapshot import dump

GOSSAMER = str(Path(sys.executable).parent / "gossamer")
TD, ISSUER = "bench.local", "https://idp.bench.example"
TEAMS, ZONES, GROUPS = 50, 20, 20
PREFIXES = ("/api", "/admin")
METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
WARM_TARGET = 3000.0
KINDS = ("latency", "warm1", "warm2", "floor", "sync-floor", "cold")
FLOORS = ("floor", "sync-floor")

#: ``python -c CLIENT REQUESTS_FILE TARGETS CONCURRENCY MAX_REQUESTS MAX_SECONDS CYCLE PID...``
#: REQUESTS_FILE: serialised CheckRequests, each as a 4-byte big-endian length + bytes;
#: TARGETS: comma-separated host:port; CYCLE 1: ask them over and over, 0: each once.
#: Prints one JSON line: latencies (ms), allowed, denied, errors, elapsed, servers' CPU s,
#: the client's own CPU s.
CLIENT = r"""
import asyncio, json, os, struct, sys, time
import grpc
from envoy.service.auth.v3 import external_auth_pb2 as ea
from google.rpc.status_pb2 import Status
path, targets, conc = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
max_requests, max_seconds, cycle = int(sys.argv[4]), float(sys.argv[5]), sys.argv[6] == "1"
pids = [int(p) for p in sys.argv[7:]]
TICKS = os.sysconf("SC_CLK_TCK")
raw, reqs, i = open(path, "rb").read(), [], 0
while i < len(raw):
    (n,) = struct.unpack(">I", raw[i:i + 4]); reqs.append(raw[i + 4:i + 4 + n]); i += 4 + n
if not cycle: max_requests = min(max_requests, len(reqs))
METHOD = "/envoy.service.auth.v3.Authorization/Check"
def cpu(ps):
    total = 0
    for pid in ps:
        raw = open(f"/proc/{pid}/stat").read()
        f = raw[raw.rindex(")") + 2:].split(); total += int(f[11]) + int(f[12])
    return total / TICKS
async def main():
    chans = [grpc.aio.insecure_channel(t, options=[("grpc.use_local_subchannel_pool", 1)])
             for _ in range(2) for t in targets]
    calls = [c.unary_unary(METHOD) for c in chans]  # bytes in, bytes out
    for c in chans: await c.channel_ready()
    ok = ea.CheckResponse(status=Status(code=0), ok_response=ea.OkHttpResponse())
    ok = ok.SerializeToString()  # an allowed check's answer: answers are counted by bytes
    state = {"next": 0, "allowed": 0, "denied": 0, "errors": 0, "lat": []}
    deadline = time.monotonic() + max_seconds
    async def worker(k):
        call = calls[k % len(calls)]
        while state["next"] < max_requests and time.monotonic() < deadline:
            n = state["next"]; state["next"] += 1
            t0 = time.perf_counter_ns()
            try:
                got = await call(reqs[n % len(reqs)])
            except grpc.aio.AioRpcError:
                state["errors"] += 1; continue
            state["lat"].append((time.perf_counter_ns() - t0) / 1e6)
            if got == ok: state["allowed"] += 1
            else: state["denied"] += 1
    c0, me0, start = cpu(pids), cpu([os.getpid()]), time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(conc)))
    elapsed, c1, me1 = time.monotonic() - start, cpu(pids), cpu([os.getpid()])
    for c in chans: await c.close()
    print(json.dumps({"latencies_ms": state["lat"], "allowed": state["allowed"],
                      "denied": state["denied"], "errors": state["errors"],
                      "elapsed": elapsed, "cpu_s": c1 - c0, "client_cpu_s": me1 - me0}))
asyncio.run(main())
"""


#: ``python -c FLOOR``: the same grpc.aio ``Authorization`` service (request parsed, same
#: server options) answering every check with a constant OK: what grpc.aio alone costs.
FLOOR = r"""
import asyncio, grpc
from envoy.service.auth.v3 import external_auth_pb2 as ea, external_auth_pb2_grpc as eg
from google.rpc.status_pb2 import Status
OK = ea.CheckResponse(status=Status(code=0), ok_response=ea.OkHttpResponse())
class Floor(eg.AuthorizationServicer):
    async def Check(self, request, context):
        return OK
async def main():
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    eg.add_AuthorizationServicer_to_server(Floor(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"floor: deciding on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()
asyncio.run(main())
"""


#: ``python -c FLOOR_SYNC``: the constant-OK service on a synchronous ``grpc.server`` with
#: ``authz serve``'s worker threads and options (``decisionpoint.serve``).
FLOOR_SYNC = r"""
import grpc
from concurrent import futures
from envoy.service.auth.v3 import external_auth_pb2 as ea, external_auth_pb2_grpc as eg
from google.rpc.status_pb2 import Status
from gossamer.decisionpoint.serve import WORKERS
OK = ea.CheckResponse(status=Status(code=0), ok_response=ea.OkHttpResponse())
class Floor(eg.AuthorizationServicer):
    def Check(self, request, context):
        return OK
server = grpc.server(futures.ThreadPoolExecutor(WORKERS), options=[("grpc.so_reuseport", 0)])
eg.add_AuthorizationServicer_to_server(Floor(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(f"sync floor: deciding on 127.0.0.1:{port}", flush=True)
server.wait_for_termination()
"""


@dataclass
class World:
    """The graph's names the requests are drawn from."""

    identities: list[str]
    services: list[str]
    #: group attribute names, index = claim value ``gN``
    groups: int


def build_graph(services: int, identities: int, rng: random.Random) -> tuple[Graph, World]:
    g = Graph()
    g.create_node("mesh", Kind.PC)
    for t in range(TEAMS):
        g.create_node(f"team{t}", Kind.UA, ["mesh"])
    for k in range(GROUPS):
        g.create_node(f"group{k}", Kind.UA, ["mesh"])
    for z in range(ZONES):
        g.create_node(f"zone{z}", Kind.OA, ["mesh"])
    ids = [f"spiffe://{TD}/ns/default/sa/id{i}" for i in range(identities)]
    for name in ids:
        g.create_node(
            name, Kind.U, [f"team{t}" for t in rng.sample(range(TEAMS), rng.randint(1, 2))]
        )
    names = [f"s{n}" for n in range(services)]
    for s in names:
        zones = [f"zone{z}" for z in rng.sample(range(ZONES), rng.randint(1, 2))]
        g.create_node(f"svc:default/{s}", Kind.OA, zones)
        for prefix in PREFIXES:
            g.create_node(f"svc:default/{s}:{prefix}", Kind.OA, [f"svc:default/{s}"])
    for ua in [f"team{t}" for t in range(TEAMS)] + [f"group{k}" for k in range(GROUPS)]:
        for z in rng.sample(range(ZONES), 12):  # GET on most zones, writes on a few
            g.associate(ua, f"zone{z}", ["GET", *rng.sample(["POST", "PUT", "DELETE"], 1)])
    admins = [g.id(f"svc:default/{s}:/admin") for s in names]
    for t in range(0, TEAMS, 2):
        g.add_prohibition(
            Prohibition(
                f"no-admin-{t}", g.rights.encode(["POST", "PUT", "DELETE"]),
                tuple((a, False) for a in rng.sample(admins, 50)), False, subject=g.id(f"team{t}"),
            )
        )  # fmt: skip
    return g, World(ids, names, GROUPS)


def document(g: Graph) -> dict[str, object]:
    groups = {f"g{k}": f"group{k}" for k in range(GROUPS)}
    return {
        "version": "bench-1",
        "graph": dump(g),
        "issuers": [{"issuer": ISSUER, "claimsToAttributes": {"groups": groups}}],
    }


def check_request(
    principal: str, sub: str, groups: list[str], service: str, method: str, path: str, n: int
) -> bytes:
    from envoy.service.auth.v3 import external_auth_pb2
    from google.protobuf import struct_pb2

    req = external_auth_pb2.CheckRequest()
    a = req.attributes
    a.source.principal = principal
    a.destination.principal = f"spiffe://{TD}/ns/default/sa/{service}"
    a.context_extensions["service"] = f"default/{service}"
    payload = struct_pb2.Struct()
    payload.update({"iss": ISSUER, "sub": sub, "aud": ["bench"], "exp": 4102444800,
                    "iat": 1764000000, "groups": groups})  # fmt: skip
    a.metadata_context.filter_metadata["envoy.filters.http.jwt_authn"].fields[
        "payload"
    ].struct_value.CopyFrom(payload)
    http = a.request.http
    http.id, http.method, http.path, http.host = str(n), method, path, f"{service}.mesh"
    http.scheme, http.protocol = "http", "HTTP/1.1"
    http.headers.update({":method": method, ":path": path, "x-request-id": f"req-{n:08d}",
                         "user-agent": "bench"})  # fmt: skip
    out: bytes = req.SerializeToString()
    return out


def requests(world: World, count: int, rng: random.Random, unique: bool) -> list[bytes]:
    """``count`` checks; ``unique``: no (caller, attribute) nor (groups, attribute) twice."""
    out: list[bytes] = []
    seen: set[tuple[object, ...]] = set()
    tries = 0
    while len(out) < count and tries < count * 20:
        tries += 1
        principal, service = rng.choice(world.identities), rng.choice(world.services)
        prefix = rng.choice(("", *PREFIXES))
        groups = sorted(f"g{k}" for k in rng.sample(range(world.groups), rng.randint(1, 2)))
        if unique:
            keys = ((principal, service, prefix), (*groups, service, prefix))
            if any(k in seen for k in keys):
                continue
            seen.update(keys)
        path = f"{prefix}/items/{rng.randint(1, 10**6)}?page={rng.randint(1, 9)}"
        method = rng.choice(METHODS)
        out.append(
            check_request(principal, f"user{len(out)}", groups, service, method, path, len(out))
        )
    return out


def write_requests(path: Path, reqs: list[bytes]) -> Path:
    path.write_bytes(b"".join(len(r).to_bytes(4, "big") + r for r in reqs))
    return path


@dataclass
class Server:
    pid: int
    address: str
    #: decision records it wrote (JSON lines on its stdout, read here so it never blocks)
    recorded: int = 0


async def _drain(stream: asyncio.StreamReader, server: Server) -> None:
    while line := await stream.readline():
        server.recorded += line.startswith(b"{")


def authz_serve(graph_file: Path, log: Path) -> contextlib.AbstractAsyncContextManager[Server]:
    """A real ``gossamer authz serve --graph FILE`` on a free port. It records every
    decision (with ``--graph``: JSON lines on stdout), counted here."""
    argv = [GOSSAMER, "authz", "serve", "--listen", "127.0.0.1:0", "--graph", str(graph_file)]
    return serving(argv, log)


@contextlib.asynccontextmanager
async def serving(argv: list[str], log: Path) -> AsyncIterator[Server]:
    """``argv`` running until it prints where it listens, stopped on the way out."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=log.open("ab")
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            line = (await proc.stdout.readline()).decode()
        found = re.search(r"deciding on (\S+:\d+)", line)
        if found is None:
            raise RuntimeError(f"{argv[1]} did not start: {line!r}; see {log}")
        server = Server(proc.pid, found.group(1))
        async with asyncio.TaskGroup() as tg:
            drain = tg.create_task(_drain(proc.stdout, server))
            try:
                yield server
            finally:
                proc.terminate()
                async with asyncio.timeout(30):
                    await proc.wait()
                    await drain
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@dataclass
class Result:
    latencies_ms: list[float]
    allowed: int
    denied: int
    errors: int
    seconds: float
    cpu_s: float
    client_cpu_s: float

    @property
    def checks(self) -> int:
        return len(self.latencies_ms)

    @property
    def rate(self) -> float:
        return self.checks / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / max(self.checks, 1) * 1e6

    def ms(self, p: float) -> float:
        return percentile(self.latencies_ms, p)

    @property
    def per_core(self) -> float:
        return self.checks / self.cpu_s if self.cpu_s else 0.0

    def line(self) -> str:
        return (
            f"{self.checks:6d} checks {self.rate:7.0f} /s  p50 {self.ms(50):6.2f}"
            f"  p99 {self.ms(99):6.2f} ms  server CPU {self.cpu_us:6.1f} us/check"
            f" ({self.cpu_s / self.seconds:.2f} cores; {self.per_core:6.0f} /s per core)"
            f"  client CPU {self.client_cpu_s / max(self.checks, 1) * 1e6:6.1f} us/check"
            f"  allowed {self.allowed * 100 // max(self.checks, 1)} %  errors {self.errors}"
        )


async def load(
    reqs: Path, servers: list[Server], concurrency: int, max_requests: int, seconds: float,
    *, cycle: bool,
) -> Result:  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, str(reqs), ",".join(s.address for s in servers),
        str(concurrency), str(max_requests), str(seconds), "1" if cycle else "0",
        *(str(s.pid) for s in servers),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(seconds + 60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"load client exited {proc.returncode}: {err.decode()[-2000:]}")
    d = json.loads(out)
    return Result(
        [float(x) for x in d["latencies_ms"]], int(d["allowed"]), int(d["denied"]),
        int(d["errors"]), float(d["elapsed"]), float(d["cpu_s"]), float(d["client_cpu_s"]),
    )  # fmt: skip


def pooled(results: list[Result]) -> Result:
    return Result(
        [x for r in results for x in r.latencies_ms], sum(r.allowed for r in results),
        sum(r.denied for r in results), sum(r.errors for r in results),
        sum(r.seconds for r in results), sum(r.cpu_s for r in results),
        sum(r.client_cpu_s for r in results),
    )  # fmt: skip


async def run(args: argparse.Namespace) -> dict[str, Result]:
    rng = random.Random(args.seed)
    g, world = build_graph(args.services, args.identities, rng)
    print(
        f"graph: {len(g):,} nodes ({args.identities:,} identities, {args.services} services x "
        f"{len(PREFIXES) + 1} attributes, {GROUPS} end-user groups by claim)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="gossamer-authz-bench-") as name:
        tmp = Path(name)
        graph_file = tmp / "graph.json"
        graph_file.write_text(json.dumps(document(g)))
        warm = write_requests(tmp / "warm.bin", requests(world, args.requests_set, rng, False))
        colds = [
            write_requests(tmp / f"cold{r}.bin", requests(world, args.cold_requests, rng, True))
            for r in range(args.rounds)
        ]
        log = tmp / "authz.log"
        recorded = 0
        out: dict[str, list[Result]] = {k: [] for k in ("warm-up", *KINDS)}
        async with (
            authz_serve(graph_file, log) as a,
            authz_serve(graph_file, log) as b,
            serving([sys.executable, "-c", FLOOR], log) as floor,
            serving([sys.executable, "-c", FLOOR_SYNC], log) as floor_sync,
        ):
            for s in (a, b, floor, floor_sync):  # warm-up: each check once on each server
                res = await load(warm, [s], args.concurrency, args.requests_set, 120, cycle=False)
                out["warm-up"].append(res)
            for r in range(args.rounds):
                lat = await load(warm, [a], 1, args.latency_requests, args.duration, cycle=True)
                out["latency"].append(lat)
                print(f"round {r} latency  servers=1 c= 1: {lat.line()}", flush=True)
                order = ("warm1", "warm2", "floor", "sync-floor")
                for key in order if r % 2 == 0 else reversed(order):
                    servers = {
                        "warm1": [a], "warm2": [a, b], "floor": [floor], "sync-floor": [floor_sync]
                    }[key]  # fmt: skip
                    res = await load(
                        warm, servers, args.concurrency, 10**7, args.duration, cycle=True
                    )
                    out[key].append(res)
                    print(
                        f"round {r} {key if key in FLOORS else 'warm':8s} "
                        f"servers={len(servers)} c={args.concurrency:2d}: "
                        f"{res.line()}",
                        flush=True,
                    )
        recorded += a.recorded + b.recorded
        for r, cold in enumerate(colds):  # a fresh process each round: caches empty
            async with authz_serve(graph_file, log) as fresh:
                # the whole cold set, each check once, however long it takes (a time bound
                # would cut it short on a loaded machine and measure a smaller set)
                res = await load(
                    cold, [fresh], args.concurrency, args.cold_requests, 120, cycle=False
                )
            recorded += fresh.recorded
            out["cold"].append(res)
            print(f"round {r} cold     servers=1 c={args.concurrency:2d}: {res.line()}", flush=True)
        asked = sum(r.checks + r.errors for k, v in out.items() if k not in FLOORS for r in v)
        asked -= sum(r.checks + r.errors for r in out["warm-up"][-2:])  # (the floors')
        print(f"decisions recorded by the servers: {recorded} of {asked} checks answered")
    return {k: pooled(v) for k, v in out.items()}


def report(res: dict[str, Result], concurrency: int) -> None:
    print("\npooled over rounds")
    for key, label in (
        ("latency", "latency, 1 in flight, warm"),
        ("warm1", "warm, 1 process"),
        ("warm2", "warm, 2 processes"),
        ("floor", "grpc.aio floor, constant OK"),
        ("sync-floor", "sync grpc floor, constant OK"),
        ("cold", "cold, 1 fresh process"),
    ):
        print(f"{label:28s} {res[key].line()}")
    lat, w1, w2, cold = res["latency"], res["warm1"], res["warm2"], res["cold"]
    print(
        f"added latency per check (1 in flight): p50 {lat.ms(50):.3f} ms  p99 {lat.ms(99):.3f} ms"
        f"; at {w1.checks / w1.seconds:.0f} /s ({concurrency} in flight): p50 {w1.ms(50):.3f} ms  "
        f"p99 {w1.ms(99):.3f} ms"
    )
    met = w1.per_core >= WARM_TARGET
    print(
        f"warm decisions/s on one core: {w1.per_core:.0f} per server CPU second, {w1.rate:.0f} "
        f"measured with one process (target >= {WARM_TARGET:.0f}: {'met' if met else 'MISSED'})"
    )
    print(
        f"cold decisions/s on one core: {cold.per_core:.0f} per server CPU second, "
        f"{cold.rate:.0f} measured"
    )
    floor = res["floor"]
    print(
        f"decision point / grpc.aio floor: server CPU per check {w1.cpu_us / floor.cpu_us:.2f}x "
        f"({w1.cpu_us:.0f} vs {floor.cpu_us:.0f} us; the floor does {floor.per_core:.0f} /s "
        "per core)"
    )
    sync = res["sync-floor"]
    print(
        f"decision point / sync grpc floor: server CPU per check {w1.cpu_us / sync.cpu_us:.2f}x "
        f"({w1.cpu_us:.0f} vs {sync.cpu_us:.0f} us; the floor does {sync.per_core:.0f} /s "
        "per core)"
    )
    print(
        f"2 processes / 1: checks/s {w2.rate / w1.rate:.2f}x, server CPU per check "
        f"{w2.cpu_us / w1.cpu_us:.2f}x, cores used {w2.cpu_s / w2.seconds:.2f} vs "
        f"{w1.cpu_s / w1.seconds:.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    """Run with ``argv`` (default: the command line's); ``bench/ngac.py`` passes its own."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--identities", type=int, default=10_000)
    ap.add_argument("--duration", type=float, default=5.0, help="max seconds per run")
    ap.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests-set", type=int, default=2000, help="distinct warm checks")
    ap.add_argument("--cold-requests", type=int, default=20_000, help="checks per cold run")
    ap.add_argument("--latency-requests", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    args.duration = max(0.2, min(args.duration, 60.0))
    args.rounds = max(1, min(args.rounds, 10))
    args.concurrency = max(1, min(args.concurrency, 256))
    res = asyncio.run(run(args))
    report(res, args.concurrency)
    failed = sum(r.errors for r in res.values())
    if failed:
        sys.exit(f"{failed} checks failed (see the errors column)")


if __name__ == "__main__":
    main()
