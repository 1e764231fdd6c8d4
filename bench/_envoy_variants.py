"""One Envoy per variant of a bootstrap, measured in interleaved rounds in the same run.

The driver of the telemetry cost benches (``telemetry_logs.py``, ``telemetry_stats.py``): a
tiny asyncio backend and a real ``gossamer telemetry serve``, then one Envoy (one worker)
per variant routing ``GET /bench`` to the backend; every round loads each Envoy in turn,
starting at another one (the machine drifts), and each variant's rounds are pooled. Prints
Envoy CPU per request, its ratio to the ``off`` variant, and the Envoy's stats matching
``stats_filter``.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from _common import LoadResult, http_load
from dataplane import BACKEND
from envoy.config.bootstrap.v3 import bootstrap_pb2

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.envoy.process import ManagedProcess
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.testing.ports import accepting, free_port

Address = tuple[str, int]
#: ``make(variant, listen, backend, telemetry service)``: the Envoy's bootstrap
MakeBootstrap = Callable[[str, Address, Address, Address], bootstrap_pb2.Bootstrap]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=4.0, help="load per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)


async def compare(
    variants: Sequence[str],
    make: MakeBootstrap,
    args: argparse.Namespace,
    *,
    stats_filter: str,
) -> None:
    """Measure each of ``variants`` (the first is the baseline) and print a line each."""
    tmp = Path(tempfile.mkdtemp(prefix="envoy-variants-"))
    token = tmp / "token"
    token.write_text(secrets.token_hex(16))
    svc, backend = ("127.0.0.1", free_port()), ("127.0.0.1", free_port())
    procs = [
        ManagedProcess(
            [sys.executable, "-c", BACKEND, *map(str, backend)], log_path=tmp / "b.log",
            name="backend",
        ),
        ManagedProcess(
            [sys.executable, "-c", "from gossamer.cli.main import run; run()", "telemetry", "serve",
             "--listen", f"{svc[0]}:{svc[1]}", "--http", f"127.0.0.1:{free_port()}",
             "--data", str(tmp / "t.sqlite"), "--token-file", str(token)],
            log_path=tmp / "t.log", name="telemetry",
        ),
    ]  # fmt: skip
    envoys: dict[str, tuple[EnvoyProcess, Address]] = {}
    try:
        for p in procs:
            await p.start()
        for addr in (backend, svc):
            await wait_until(lambda a=addr: accepting(*a), timeout=30, what=f"{addr} listening")
        for i, name in enumerate(variants):
            listen = ("127.0.0.1", free_port())
            envoy = EnvoyProcess(
                make(name, listen, backend, svc), workdir=tmp / f"envoy-{i}", concurrency=1
            )
            envoys[name] = (envoy, listen)
            await envoy.start()
        results = await _rounds(envoys, args)
        base = results[variants[0]].cpu_us_per_request
        width = max(map(len, variants))
        for name, r in results.items():
            host, port = envoys[name][0].admin_address or ("", 0)
            async with EnvoyAdmin(f"{host}:{port}") as admin:
                stats = await admin.stats(stats_filter)
            shown = dict(list(stats.items())[:6])
            print(
                f"{name:>{width}}: {r.cpu_us_per_request:6.1f} us Envoy CPU/request "
                f"({r.cpu_us_per_request / base:4.2f}x), {r.rps:7.0f} rps, p50 {r.ms(50):.2f} ms, "
                f"errors {r.errors}; {len(stats)} stats {shown}"
            )
    finally:
        for envoy, _ in envoys.values():
            await envoy.stop(5)
        for p in procs:
            await p.stop(10)


async def _rounds(
    envoys: dict[str, tuple[EnvoyProcess, Address]], args: argparse.Namespace
) -> dict[str, LoadResult]:
    for _, listen in envoys.values():  # warm up
        await http_load(listen, args.connections, max_requests=2000, max_seconds=2)
    order = list(envoys.items())
    results: dict[str, list[LoadResult]] = {n: [] for n in envoys}
    for round_ in range(args.rounds):  # each round in another order (the VM drifts)
        turn = round_ % len(order)
        for name, (envoy, listen) in order[turn:] + order[:turn]:
            results[name].append(
                await http_load(
                    listen,
                    args.connections,
                    max_requests=10**7,
                    max_seconds=args.seconds,
                    pids=[envoy.pid],
                )
            )
    return {name: LoadResult.pooled(rs) for name, rs in results.items()}
