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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _envoy_variants import Address, add_arguments, compare
from envoy.config.bootstrap.v3.bootstrap_pb2 import Bootstrap

from gossamer.testing import resources
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
    buffers = {"off": 0, **{f"log {b // 1024} KiB": b for b in args.buffers}}

    def make(name: str, listen: Address, backend: Address, svc: Address) -> Bootstrap:
        return bootstrap(listen, backend, svc, buffers[name])

    await compare(list(buffers), make, args, stats_filter=r"grpc_access_log\.logs_")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    p.add_argument("--buffers", type=int, nargs="*", default=[16384, 65536, 262144])
    asyncio.run(main(p.parse_args()))
