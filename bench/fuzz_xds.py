"""Hostile ADS clients against a real control plane: does it stay up and answer clearly?

Run: ``.venv/bin/python bench/fuzz_xds.py [--rounds 1] [--flood 2000]``.

A control plane (``running_control_plane``, in this process) serves a gateway ``edge``; a
well-behaved fake Envoy (``gossamer.testing.ads_client``) holds its config throughout.
Then raw gRPC streams (SotW and delta, bytes written as given) misbehave: wrong and empty
type URLs, a 1 MB nonce and version_info, unknown and malformed node ids, another proxy's
node id mid-stream, no node, 100,000 resource names, a bounded flood of subscription
changes, garbage bytes. Each stream's outcome is its gRPC status, or ``open`` if the server
kept serving it for ``--wait`` seconds. Defects: a status of INTERNAL or UNKNOWN (the
server failed rather than refused), the good client's stream ended, a fresh good client
not served afterwards, RSS growing more than ``--max-rss-growth`` MB.

The last line is ``FUZZ_XDS attacks=N internal=N good_client_lost=N fresh_client_ok=0|1
rss_growth_mb=F rss_over=0|1 defects=N`` (``internal``: streams answered INTERNAL or
UNKNOWN, garbage bytes included: the server decodes requests itself and refuses bytes
that are no request as INVALID_ARGUMENT); the exit status is 1 when defects > 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from _common import rss_mb
from envoy.service.discovery.v3 import discovery_pb2

from gossamer.testing import ads_client
from gossamer.testing.ads_client import envoy_node
from gossamer.testing.controlplane import apply_manifests, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.types import API_VERSION, ProxyIdentity

EDGE = ProxyIdentity("gateway", "default", "edge")
NOBODY = ProxyIdentity("sidecar", "default", "nobody")  # no such Workload
SOTW = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
DELTA = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
MB = "x" * 1_000_000
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def sotw(
    type_url: str = CDS,
    node: bool = True,
    node_id: str | None = None,
    proxy: ProxyIdentity = EDGE,
    **kw: object,
) -> bytes:
    req = discovery_pb2.DiscoveryRequest(type_url=type_url, **kw)
    if node:
        req.node.CopyFrom(envoy_node(proxy))
        if node_id is not None:
            req.node.id = node_id
    out: bytes = req.SerializeToString()
    return out


def delta(
    type_url: str = CDS,
    node: bool = True,
    node_id: str | None = None,
    proxy: ProxyIdentity = EDGE,
    **kw: object,
) -> bytes:
    req = discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, **kw)
    if node:
        req.node.CopyFrom(envoy_node(proxy))
        if node_id is not None:
            req.node.id = node_id
    out: bytes = req.SerializeToString()
    return out


def attacks(flood: int) -> dict[str, tuple[str, Callable[[], list[bytes]]]]:
    """name -> (method, the messages it writes)."""
    names = [f"cluster-{i}" for i in range(100_000)]
    return {
        "wrong type URL": (SOTW, lambda: [sotw("type.googleapis.com/no.Such")]),
        "empty type URL": (SOTW, lambda: [sotw("")]),
        "huge nonce": (SOTW, lambda: [sotw(), sotw(response_nonce=MB)]),
        "huge version_info": (SOTW, lambda: [sotw(), sotw(version_info=MB)]),
        "unknown node id": (SOTW, lambda: [sotw(proxy=NOBODY)]),
        "malformed node id": (SOTW, lambda: [sotw(node_id="\u202e~~~" * 1000)]),
        "missing node": (SOTW, lambda: [sotw(node=False)]),
        "another proxy's node id": (
            SOTW,
            lambda: [sotw(), sotw(LDS, node_id="sidecar~default~other")],
        ),
        "100k resource names": (SOTW, lambda: [sotw(), sotw(EDS, resource_names=names)]),
        "subscription flood": (
            SOTW,
            lambda: [sotw()] + [sotw(EDS, resource_names=[f"c{i % 50}"]) for i in range(flood)],
        ),
        "garbage bytes": (SOTW, lambda: [b"\xff\x00garbage\x12\x99"]),
        "delta wrong type URL": (DELTA, lambda: [delta("type.googleapis.com/no.Such")]),
        "delta missing node": (DELTA, lambda: [delta(node=False)]),
        "delta unknown node id": (DELTA, lambda: [delta(proxy=NOBODY)]),
        "delta node id not its metadata": (DELTA, lambda: [delta(node_id="gateway~default~x")]),
        "delta 100k subscribe": (
            DELTA,
            lambda: [delta(), delta(EDS, resource_names_subscribe=names)],
        ),
        "delta flood": (
            DELTA,
            lambda: (
                [delta()]
                + [
                    delta(
                        EDS,
                        resource_names_subscribe=[f"c{i}"],
                        resource_names_unsubscribe=[f"c{i - 1}"],
                    )
                    for i in range(flood)
                ]
            ),
        ),
        "delta garbage bytes": (DELTA, lambda: [b"\x0a\xff\xff\xff\xff\x0f"]),
    }


async def attack(channel: grpc.aio.Channel, method: str, messages: list[bytes], wait: float) -> str:
    """Write ``messages``, read until the server ends the call or ``wait`` s pass."""
    call = channel.stream_stream(method, request_serializer=None, response_deserializer=None)()
    responses = 0
    try:
        async with asyncio.timeout(wait):
            for m in messages:
                await call.write(m)
            async for _ in call:
                responses += 1
    except TimeoutError:
        call.cancel()
        return f"open ({responses} responses)"
    except grpc.aio.AioRpcError as e:
        return f"{e.code().name}: {(e.details() or '')[:70]}"
    except asyncio.InvalidStateError:
        pass
    code = await call.code()
    return f"{code.name}: {((await call.details()) or '')[:70]}"


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="fuzz-xds-") as tmp:
        async with running_control_plane(Path(tmp) / "cp") as app:
            gateway = {"address": "127.0.0.1", "port": free_port()}
            await apply_manifests(
                app,
                [
                    {
                        "apiVersion": API_VERSION,
                        "kind": "Gateway",
                        "metadata": {"name": "edge"},
                        "spec": gateway,
                    }
                ],
                wait=False,
            )
            async with ads_client.connect(EDGE, app.xds_addr) as good:
                await good.wait_for(lambda c: bool(c.resources(LDS)), 20, "the gateway's listener")
                rss_before = rss_mb()
                rows: list[tuple[str, str]] = []
                channel = ads_client.open_channel(app.xds_addr)
                try:
                    for _ in range(args.rounds):
                        for name, (method, messages) in attacks(args.flood).items():
                            started = time.perf_counter()
                            outcome = await attack(channel, method, messages(), args.wait)
                            rows.append(
                                (name, f"{outcome}  [{time.perf_counter() - started:.2f} s]")
                            )
                finally:
                    await channel.close()
                good_lost = int(good.closed)
                rss_growth = rss_mb() - rss_before
            fresh_ok = 1
            try:
                async with ads_client.connect(EDGE, app.xds_addr) as fresh:
                    await fresh.wait_for(lambda c: bool(c.resources(LDS)), 20, "the listener")
            except Exception as e:  # any failure here is the defect being counted
                print(f"fresh client not served: {e!r}")
                fresh_ok = 0
    print(f"{'attack':31s} outcome (gRPC status, or open) [time]")
    for name, outcome in rows:
        print(f"{name:31s} {outcome}")
    failed = [name for name, o in rows if o.split(":")[0] in {c.name for c in BAD}]
    rss_over = int(rss_growth > args.max_rss_growth)
    defects = len(failed) + good_lost + (1 - fresh_ok) + rss_over
    print(f"good client kept its stream: {not good_lost}; fresh client served: {bool(fresh_ok)}")
    print(f"RSS growth during the attacks: {rss_growth:.1f} MB (bound {args.max_rss_growth:g})")
    print(
        f"FUZZ_XDS attacks={len(rows)} internal={len(failed)} "
        f"good_client_lost={good_lost} fresh_client_ok={fresh_ok} "
        f"rss_growth_mb={rss_growth:.1f} rss_over={rss_over} defects={defects}",
        flush=True,
    )
    return 1 if defects else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="times through every attack")
    parser.add_argument("--flood", type=int, default=2000, help="messages in a flood")
    parser.add_argument("--wait", type=float, default=3.0, help="s to wait on each stream")
    parser.add_argument("--max-rss-growth", type=float, default=200.0, help="MB")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
