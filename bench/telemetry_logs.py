"""Envoy's CPU per request with the translator's telemetry access logger, by buffer size.

One Envoy (one worker) routes ``GET /bench`` to a tiny asyncio backend; variants of its
HCM, measured in interleaved rounds in the same run: no logger, and the logger of
``translate.telemetry`` (the outbound one, with its custom tags, to a real ``gossamer
telemetry serve``) at several ``buffer_size_bytes``. Prints Envoy CPU per request and the
ratio to no logger (docs/telemetry.md, "Cost").

    .venv/bin/python bench/telemetry_logs.py [--seconds 4] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LoadResult, http_load
from dataplane import BACKEND

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.envoy.process import ManagedProcess
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.testing import resources
from gossamer.testing.ports import free_port
from gossamer.translate import telemetry
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.types import ProxyIdentity

WHO = ProxyIdentity("sidecar", "default", "web-1", service="web")
CLUSTER = "outbound|default/api|http"


def bootstrap(listen: tuple[str, int], backend: tuple[str, int], svc: tuple[str, int], buffer: int):  # type: ignore[no-untyped-def]
    table = resources.route_configuration("routes", {"*": CLUSTER})
    listener = resources.http_listener("outbound", listen, table)
    if buffer:
        from envoy.extensions.filters.network.http_connection_manager.v3 import (
            http_connection_manager_pb2 as hcm_pb2,
        )

        hcm = hcm_pb2.HttpConnectionManager()
        listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
        log = telemetry._access_log(
            telemetry.OUTBOUND, tuple(telemetry.outbound_tags(("default", "api")).items())
        )
        from envoy.extensions.access_loggers.grpc.v3 import als_pb2

        config = als_pb2.HttpGrpcAccessLogConfig()
        log.typed_config.Unpack(config)
        config.common_config.buffer_size_bytes.value = buffer
        log.typed_config.Pack(config)
        hcm.access_log.append(log)
        listener.filter_chains[0].filters[0].typed_config.Pack(hcm)
    out = static_bootstrap(
        listeners=[listener],
        clusters=[
            resources.static_cluster(CLUSTER, [backend]),
            resources.static_cluster(telemetry.CLUSTER, [svc], http2=True),
        ],
        node=WHO,
    )
    return out


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="telemetry-logs-"))
    token = tmp / "token"
    token.write_text(secrets.token_hex(16))
    svc = ("127.0.0.1", free_port())
    backend = ("127.0.0.1", free_port())
    procs = [
        ManagedProcess(
            [sys.executable, "-c", BACKEND, *map(str, backend)],
            log_path=tmp / "b.log",
            name="backend",
        ),
        ManagedProcess(
            [sys.executable, "-c", "from gossamer.cli.main import run; run()", "telemetry", "serve",
             "--listen", f"{svc[0]}:{svc[1]}", "--http", f"127.0.0.1:{free_port()}",
             "--data", str(tmp / "t.sqlite"), "--token-file", str(token)],
            log_path=tmp / "t.log", name="telemetry",
        ),
    ]  # fmt: skip
    for p in procs:
        await p.start()
    await asyncio.sleep(2)
    variants = {"off": 0, **{f"log {b // 1024} KiB": b for b in args.buffers}}
    envoys = {}
    for name, buffer in variants.items():
        listen = ("127.0.0.1", free_port())
        envoy = EnvoyProcess(
            bootstrap(listen, backend, svc, buffer),
            workdir=tmp / name.replace(" ", "-"),
            concurrency=1,
        )
        await envoy.start()
        envoys[name] = (envoy, listen)
    results: dict[str, list[LoadResult]] = {n: [] for n in variants}
    try:
        for _, listen in envoys.values():  # warm up
            await http_load(listen, args.connections, max_requests=2000, max_seconds=2)
        order = list(envoys.items())
        for round_ in range(args.rounds):  # each round in another order (the VM drifts)
            for name, (envoy, listen) in (
                order[round_ % len(order) :] + order[: round_ % len(order)]
            ):
                results[name].append(
                    await http_load(
                        listen,
                        args.connections,
                        max_requests=10**7,
                        max_seconds=args.seconds,
                        pids=[envoy.pid],
                    )
                )
        base = LoadResult.pooled(results["off"]).cpu_us_per_request
        for name, rs in results.items():
            r = LoadResult.pooled(rs)
            host, port = envoys[name][0].admin_address or ("", 0)
            async with EnvoyAdmin(f"{host}:{port}") as admin:
                stats = await admin.stats(r"grpc_access_log\.logs_")
            print(
                f"{name:>12}: {r.cpu_us_per_request:6.1f} us Envoy CPU/request "
                f"({r.cpu_us_per_request / base:4.2f}x), {r.rps:7.0f} rps, p50 {r.ms(50):.2f} ms, "
                f"errors {r.errors}; {stats}"
            )
    finally:
        for envoy, _ in envoys.values():
            await envoy.stop(5)
        for p in procs:
            await p.stop(10)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--buffers", type=int, nargs="*", default=[16384, 65536, 262144])
    asyncio.run(main(p.parse_args()))
