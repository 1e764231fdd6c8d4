"""What telemetry costs a request: Envoy CPU per request of a strict-mTLS sidecar chain
with telemetry on against the same chain with it off, in one run, by source.

Run: ``.venv/bin/python bench/telemetry.py --chain [--duration 3] [--requests 50000]
[--rounds 6] [--configs off,stats,logs,trace1,trace100]`` (= ``bench/telemetry_chain.py``).

Configurations, all up at once, each a caller sidecar -> callee sidecar -> backend chain
of real Envoys (``--concurrency 1``) run by two real ``gossamer agent`` processes under a
real control plane of its own (the telemetry service's address is per control plane, the
tracing rate per Mesh), Mesh ``strict`` (mTLS between the sidecars, SDS):
  * off: ``--telemetry off`` (no access logger, no tracer);
  * stats: ``--telemetry auto`` (the supervised ``gossamer telemetry serve`` child) with the
    Mesh's default ``telemetry.requests: stats`` (Envoy's stats access logger on every HCM,
    pushed by the stat sink every 10 s), ``tracing.sampling: 0`` (the default: tracing off,
    no tracer in any HCM);
  * logs: the same with ``telemetry.requests: logs`` (the gRPC access logger on every HCM);
  * trace1 / trace100: logs with ``tracing.sampling`` 1 % / 100 % (logs, so that tracing's
    own share reads against the logs chain as in earlier runs);
  * stats-tags / stats-joined: stats with the logger's fields one Envoy tag each (8
    outbound, 5 inbound) / all in one tag, whatever the default (``_stats_layouts``);
    stats-bare: the histogram tagged with its view only (no edge, not checked: the floor
    of what the tags cost); stats-trace1: stats with tracing on at 1 % (what turning
    tracing on costs beside the default counting).
Measured interleaved (order flipped each round) at 1 and 16 connections; the load
generator (``_common.LOADER``) runs in its own process and reads the chain's two Envoys'
utime + stime around its run. Each telemetry service is a real process; its CPU over the
measured rounds is reported apart (the target is about the Envoys). Exactness is checked,
not assumed: after the run each 'on' service must have counted, in both the client and the
server view of the caller -> callee edge, exactly the requests the load generator sent in
the measured rounds (its counts settled before they started), else the bench fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _stats_layouts
import httpx
from _common import LoadResult, chain_args, chain_parser, cpu_seconds, exit_if_failed, http_load
from mesh_hosts import HostAgent
from mtls_chain import (
    Chain,
    Sample,
    backend,
    listener_handshakes,
    wait_answering,
    wait_refusing_plaintext,
    workload,
)

from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.translate import stat_sink

TD = "bench.local"
BACKEND_HOST = "127.0.0.5"
#: name -> (tracing sampling percent, ``Mesh.spec.telemetry.requests``); None: telemetry off
CONFIGS: dict[str, tuple[float, str] | None] = {
    "off": None,
    "stats": (0.0, "stats"),
    "logs": (0.0, "logs"),
    "trace1": (1.0, "logs"),
    "trace100": (100.0, "logs"),
    "stats-tags": (0.0, "stats"),
    "stats-joined": (0.0, "stats"),
    "stats-bare": (0.0, "stats"),
    "stats-trace1": (1.0, "stats"),
}
#: configuration -> its Mesh's trust domain (``_stats_layouts.TRUST_DOMAINS``), else ``TD``
TRUST_DOMAINS = {
    "stats-tags": "tags.bench.local",
    "stats-joined": "joined.bench.local",
    "stats-bare": "bare.bench.local",
}
#: configurations whose counts cannot be checked per edge (a floor, not a candidate)
UNCHECKED = ("stats-bare",)
#: the configurations whose cost the target is about (exact topology and RED)
TARGETED = ("stats", "logs", "stats-tags", "stats-joined")
CONNECTIONS = (1, 16)
#: the issue's target for exact topology and RED: on / off CPU per request
CPU_TARGET = 1.10

Address = tuple[str, int]


@dataclass
class Plane:
    """One configuration: its control plane, two hosts and the chain through them."""

    name: str
    sampling: float | None
    requests: str
    app: ControlPlaneApp
    callers: HostAgent
    callees: HostAgent
    local: Address
    chain: Chain | None = None

    @property
    def edge(self) -> tuple[str, str]:
        return (f"default/{self.name}-caller", f"default/{self.name}-backend")

    def telemetry_pid(self) -> int | None:
        child = self.app.telemetry.child if self.app.telemetry else None
        return child.process.pid if child and child.process else None

    async def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET ``path`` of this plane's telemetry service (its query API, its token)."""
        assert self.app.telemetry is not None
        upstream = self.app.telemetry.upstream
        headers = {"authorization": f"Bearer {await upstream.token()}"}
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            r = await client.get(f"{upstream.url}{path}", params=params, headers=headers)
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    async def counted(self) -> tuple[int, int]:
        """Requests of the caller -> callee edge in the client and the server view."""
        out = []
        for view in ("client", "server"):
            top = await self.api("/v1/topology", since="60m", view=view)
            out.append(
                sum(
                    int(e["requests"])
                    for e in top["edges"]
                    if (e["source"], e["destination"]) == self.edge
                )
            )
        return out[0], out[1]


def manifests(name: str, config: tuple[float, str] | None) -> str:
    tracing = ""
    if config is not None:
        tracing = f", tracing: {{sampling: {config[0]}}}, telemetry: {{requests: {config[1]}}}"
    return f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{trustDomain: {TRUST_DOMAINS.get(name, TD)}, mtls: {{mode: strict}}{tracing}}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: {name}-caller}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: {name}-backend}}
spec: {{ports: [{{name: http, port: 9080}}]}}
"""


async def open_plane(
    stack: contextlib.AsyncExitStack, tmp: Path, index: int, name: str, app_addr: Address
) -> Plane:
    """A control plane for ``name`` and its two hosts' agents (started, not yet waited
    for: the agents join with this plane's admin token, exported while it is the newest)."""
    config = CONFIGS[name]
    telemetry = TelemetrySettings("off" if config is None else "auto")
    app = await stack.enter_async_context(
        running_control_plane(tmp / name / "cp", telemetry=telemetry)
    )
    await apply_yaml(app, manifests(name, config), wait=False)
    callers_ip, callees_ip = f"127.0.{index + 10}.2", f"127.0.{index + 10}.3"
    local = (callers_ip, free_port(callers_ip))
    callers = HostAgent(app, f"{name}-callers", callers_ip, tmp / name / "callers", [
        workload("c-1", f"{name}-caller", app_addr, (f"{name}-backend", local)),
    ])  # fmt: skip
    callees = HostAgent(app, f"{name}-callees", callees_ip, tmp / name / "callees", [
        workload("b-1", f"{name}-backend", app_addr),
    ])  # fmt: skip
    for host in (callers, callees):
        stack.push_async_callback(host.stop)
        await host.start()
    sampling, requests = config if config is not None else (None, "")
    return Plane(name, sampling, requests, app, callers, callees, local)


async def settled(plane: Plane, within: float = 90.0) -> tuple[int, int]:
    """The edge's counts once two readings ``quiet`` s apart agree (the gRPC logger flushes
    every second, the stat sink every 10 s), so what the measured rounds add can be told
    apart."""
    quiet = 2.5 if plane.requests == "logs" else stat_sink.FLUSH_INTERVAL.total_seconds() + 2.5
    async with asyncio.timeout(within):
        last = await plane.counted()
        while True:
            await asyncio.sleep(quiet)
            now = await plane.counted()
            if now == last:
                return now
            last = now


async def spans_sent(plane: Plane) -> int:
    total = 0
    for host, key in ((plane.callers, "default/c-1"), (plane.callees, "default/b-1")):
        async with host.admin(key) as admin:
            stats = await admin.stats(r"^tracing\.opentelemetry\.spans_sent$")
        total += sum(stats.values())
    return total


async def spans_received(plane: Plane) -> int:
    traces = (await plane.api("/v1/ingestion", since="60m")).get("traces", {})
    return int(traces.get("spansReceived", 0))


async def measure(planes: dict[str, Plane], args: argparse.Namespace) -> list[Sample]:
    for p in planes.values():  # warm-up: connections, pools, TLS sessions
        assert p.chain is not None
        await http_load(p.chain.address, 16, max_requests=500, max_seconds=2)
        if p.chain.handshakes is None or await p.chain.handshakes() == 0:
            raise RuntimeError(f"the {p.name} chain's callee Envoy made no TLS handshake")
    on = [p for p in planes.values() if p.sampling is not None and p.name not in UNCHECKED]
    base = {p.name: await settled(p) for p in on}
    spans0 = {p.name: await spans_sent(p) for p in on}
    received0 = {p.name: await spans_received(p) for p in on}
    cpu0 = {p.name: cpu_seconds(pid) for p in on if (pid := p.telemetry_pid())}
    samples: list[Sample] = []
    for r in range(args.rounds):
        for conns in CONNECTIONS:
            for name in list(planes) if r % 2 == 0 else list(reversed(planes)):
                chain = planes[name].chain
                assert chain is not None
                res = await http_load(
                    chain.address, conns, max_requests=args.requests,
                    max_seconds=args.duration, pids=chain.pids,
                )  # fmt: skip
                samples.append(Sample(name, conns, res, None))
                print(
                    f"round {r} {name:8s} c={conns:2d}: {res.requests:6d} req "
                    f"{res.rps:7.0f} rps  p50 {res.ms(50):6.3f}  p99 {res.ms(99):6.3f} ms  "
                    f"{res.cpu_us_per_request:6.1f} us CPU/req  errors {res.errors}  "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    print()
    for p in on:
        sent = sum(s.result.requests + s.result.errors for s in samples if s.chain == p.name)
        want = (base[p.name][0] + sent, base[p.name][1] + sent)

        async def exact(p: Plane = p, want: tuple[int, int] = want) -> bool:
            return await p.counted() == want

        with contextlib.suppress(TimeoutError):
            await wait_until(exact, timeout=45, what=f"{p.name}: every request counted")
        got = await p.counted()
        got = (got[0] - base[p.name][0], got[1] - base[p.name][1])
        pid = p.telemetry_pid()
        service_cpu = cpu_seconds(pid) - cpu0[p.name] if pid and p.name in cpu0 else float("nan")
        spans = await spans_sent(p) - spans0[p.name]
        received = await spans_received(p) - received0[p.name]
        print(
            f"exact: {p.name} sent {sent}, counted client {got[0]} server {got[1]} "
            f"({'exact' if got == (sent, sent) else 'NOT EXACT'}); Envoys' spans_sent "
            f"{spans} ({spans / max(sent, 1):.4f} per request), service spansReceived "
            f"{received}; telemetry service CPU "
            f"{service_cpu / max(sent, 1) * 1e6:.1f} us/request",
            flush=True,
        )
        if got != (sent, sent):
            raise RuntimeError(f"{p.name}: the telemetry service counted {got}, sent {sent}")
    return samples


async def run(args: argparse.Namespace) -> list[Sample]:
    with tempfile.TemporaryDirectory(prefix="gossamer-telemetry-chain-") as name:
        tmp = Path(name)
        app_addr = (BACKEND_HOST, free_port(BACKEND_HOST))
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(backend(app_addr))
            planes: dict[str, Plane] = {}
            for i, config in enumerate(args.configs):
                planes[config] = await open_plane(stack, tmp, i, config, app_addr)
            for p in planes.values():
                for host in (p.callers, p.callees):
                    await host.wait_running()
            for p in planes.values():
                await wait_answering(p.local)
                await wait_refusing_plaintext(p.callees.inbound("default/b-1"))
                admin = await stack.enter_async_context(p.callees.admin("default/b-1"))
                p.chain = Chain(p.name, p.local, (
                    p.callers.envoy_pid("default/c-1"), p.callees.envoy_pid("default/b-1")),
                    lambda admin=admin: listener_handshakes(admin))  # type: ignore[misc]  # fmt: skip
            print("chains up: " + ", ".join(planes), flush=True)
            return await measure(planes, args)
    raise AssertionError("unreachable")


def _spread(by: dict[str, list[Sample]], name: str, key: Callable[[LoadResult], float]) -> str:
    pairs = zip(by[name], by["off"], strict=True)
    return " ".join(f"{key(a.result) / key(o.result):.2f}" for a, o in pairs)


def report(samples: list[Sample], configs: list[str]) -> None:
    """The table pooled over rounds, and each configuration / off, per connection count."""
    print("\npooled over rounds (CPU = both Envoys of the chain)")
    print(
        f"{'conns':>5} {'config':>14} {'rps':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'us CPU/req':>10} {'x off':>6} {'errors':>6}"
    )
    for conns in CONNECTIONS:
        by = {c: [s for s in samples if s.chain == c and s.connections == conns] for c in configs}
        rows = {c: LoadResult.pooled([s.result for s in by[c]]) for c in configs}
        off = rows["off"].cpu_us_per_request
        for config, m in rows.items():
            print(
                f"{conns:5d} {config:>14} {m.rps:7.0f} {m.ms(50):7.3f} {m.ms(99):7.3f} "
                f"{m.cpu_us_per_request:10.1f} {m.cpu_us_per_request / off:5.2f}x {m.errors:6d}"
            )
        for config in configs[1:]:
            ratio = rows[config].cpu_us_per_request / off
            met = "met" if ratio <= CPU_TARGET else "MISSED"
            verdict = f" (target <= {CPU_TARGET}x: {met})" if config in TARGETED else ""
            print(
                f"      c={conns} {config}/off: CPU/req {ratio:.2f}x{verdict}, p50 "
                f"{rows[config].ms(50) / rows['off'].ms(50):.2f}x, p99 "
                f"{rows[config].ms(99) / rows['off'].ms(99):.2f}x; by round "
                f"{_spread(by, config, lambda r: r.cpu_us_per_request)}"
            )
        if "logs" in rows:  # tracing's own share: against the logs-only chain
            logs = rows["logs"].cpu_us_per_request
            for config in (c for c in configs if c.startswith("trace")):
                print(
                    f"      c={conns} {config}/logs (tracing alone): CPU/req "
                    f"{rows[config].cpu_us_per_request / logs:.2f}x"
                )


def main(argv: list[str] | None = None) -> None:
    """Run with ``argv`` (default: the command line's); ``bench/telemetry.py`` passes its own."""
    parser = chain_parser(__doc__)
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help=f"comma-separated, 'off' first: {CONFIGS}"
    )
    args = chain_args(parser, argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown or not args.configs or args.configs[0] != "off" or len(set(args.configs)) < 2:
        choices = list(CONFIGS)[1:]
        parser.error(f"--configs: 'off', then one or more of {choices}; got {args.configs}")
    _stats_layouts.install()
    samples = asyncio.run(run(args))
    report(samples, args.configs)
    exit_if_failed(s.result.errors for s in samples)


if __name__ == "__main__":
    main()
