"""gRPC (unary and streaming) and TCP services through two sidecars."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gossamer.polling import wait_until
from gossamer.testing.backends import EchoClient, GrpcBackend, TcpEchoBackend
from gossamer.testing.controlplane import apply_manifests, mesh_envoy, running_control_plane
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CLIENT = "127.0.0.2"


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_grpc_and_tcp(tmp_path: Path, delta: bool) -> None:
    grpc_port, tcp_port = free_port(CLIENT), free_port(CLIENT)
    async with (
        GrpcBackend("ratings-1", host="127.0.0.3") as ratings,
        TcpEchoBackend("db-1", host="127.0.0.4") as db,
        running_control_plane(tmp_path) as app,
    ):
        await apply_manifests(
            app,
            [
                service("web"),
                service("ratings", 9090, "grpc"),
                service("db", 5432, "tcp"),
                workload(
                    "web-1",
                    "web",
                    CLIENT,
                    free_port(CLIENT),
                    1,
                    dependencies=[
                        {"service": "ratings", "localAddress": CLIENT, "localPort": grpc_port},
                        {"service": "db", "localAddress": CLIENT, "localPort": tcp_port},
                    ],
                ),
                workload(
                    "ratings-1", "ratings", "127.0.0.3", free_port("127.0.0.3"), ratings.address[1]
                ),
                workload("db-1", "db", "127.0.0.4", free_port("127.0.0.4"), db.address[1]),
            ],
            wait=False,
        )
        proxies = [ProxyIdentity("sidecar", "default", n) for n in ("web-1", "ratings-1", "db-1")]
        envoys = [mesh_envoy(app, p, delta=delta) for p in proxies]
        async with (
            envoys[0],
            envoys[1],
            envoys[2],
            EchoClient((CLIENT, grpc_port)) as client,
        ):

            async def unary() -> bytes | None:
                try:
                    return await client.unary(b"hi", timeout_s=2)
                except Exception:
                    return None

            assert await wait_until(unary, timeout=30, what="a gRPC reply") == b"ratings-1:hi"
            replies = await client.stream(5)
            assert len(replies) == 5 and all(r.startswith(b"ratings-1") for r in replies)
            bidi = await client.bidi([b"a", b"b", b"c"])
            assert bidi == [b"ratings-1:a", b"ratings-1:b", b"ratings-1:c"]

            reader, writer = await asyncio.open_connection(CLIENT, tcp_port)
            try:
                greeting = await asyncio.wait_for(reader.readline(), 10)
                assert greeting == b"db-1\n"
                writer.write(b"ping\n")
                await writer.drain()
                assert await asyncio.wait_for(reader.readline(), 10) == b"ping\n"
            finally:
                writer.close()
            assert ratings.calls["Unary"] >= 1 and ratings.calls["Stream"] == 1

            # a sidecar gets only what its workload depends on: one cluster per dependency
            # (plus its own inbound cluster and the static xDS cluster)
            envoy = envoys[0]
            stats = await envoy.stats("cluster_manager.active_clusters")
            assert stats["cluster_manager.active_clusters"] == 2 + 1 + 1
