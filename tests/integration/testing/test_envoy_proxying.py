"""A real Envoy with a static config in front of the in-process backends on 127.0.0.2/3.

Asserts on what a client sees through Envoy, for HTTP/1.1 and HTTP/2 upstreams, gRPC
(unary, server streaming, bidi) and raw TCP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.testing import resources
from gossamer.testing.backends import EchoClient, GrpcBackend, HttpBackend, TcpEchoBackend
from gossamer.testing.ports import loopback_host
from gossamer.translate.bootstrap import static_bootstrap

pytestmark = pytest.mark.integration


@dataclass
class Mesh:
    envoy: EnvoyProcess
    web: HttpBackend
    web_h2: HttpBackend
    echo: GrpcBackend
    db: TcpEchoBackend
    http_address: tuple[str, int]
    tcp_address: tuple[str, int]

    @property
    def http_url(self) -> str:
        return f"http://{self.http_address[0]}:{self.http_address[1]}"


@pytest_asyncio.fixture
async def mesh() -> AsyncIterator[Mesh]:
    host_a, host_b = loopback_host(1), loopback_host(2)
    async with (
        HttpBackend("web", host=host_a) as web,
        HttpBackend("web-h2", host=host_b) as web_h2,
        GrpcBackend("echo", host=host_b) as echo,
        TcpEchoBackend("db", host=host_a) as db,
    ):
        # Port 0: Envoy picks free ports, read back from its admin API (no race).
        http_address = tcp_address = ("127.0.0.1", 0)
        routes = resources.route_configuration(
            "routes", {"web": "web", "web-h2": "web-h2", "echo": "echo"}
        )
        bootstrap = static_bootstrap(
            listeners=[
                resources.http_listener("http", http_address, routes),
                resources.tcp_listener("tcp", tcp_address, "db"),
            ],
            clusters=[
                resources.static_cluster("web", [web.address]),
                resources.static_cluster("web-h2", [web_h2.address], http2=True),
                resources.static_cluster("echo", [echo.address], http2=True),
                resources.static_cluster("db", [db.address]),
            ],
        )
        async with EnvoyProcess(bootstrap) as envoy:
            bound = await envoy.listener_addresses()
            yield Mesh(envoy, web, web_h2, echo, db, bound["http"], bound["tcp"])


@pytest.mark.asyncio
async def test_http_through_envoy_to_http1_and_http2_upstreams(mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=mesh.http_url, trust_env=False) as client:
        web = await client.get("/a/b?c=d", headers={"host": "web", "x-test": "1"})
        web_h2 = await client.get("/x", headers={"host": "web-h2"})
        failing = await client.get("/status/503", headers={"host": "web"})
        unknown = await client.get("/", headers={"host": "nobody"})

    assert web.status_code == 200
    body = web.json()
    assert (body["backend"], body["path"], body["query"]) == ("web", "/a/b", "c=d")
    assert body["http_version"] == "1.1"
    assert body["headers"]["x-test"] == "1"
    assert "x-request-id" in body["headers"]  # added by Envoy
    assert web.headers["server"] == "envoy"

    assert web_h2.json()["backend"] == "web-h2"
    assert web_h2.json()["http_version"] == "2"

    assert failing.status_code == 503
    assert failing.json()["backend"] == "web"
    assert unknown.status_code == 404
    assert (mesh.web.requests, mesh.web_h2.requests) == (2, 1)

    await mesh.envoy.wait_for_stat("cluster.web.upstream_rq_completed", at_least=2)
    stats = await mesh.envoy.stats()
    assert stats["cluster.web.upstream_rq_503"] == 1
    assert stats["cluster.web-h2.upstream_cx_http2_total"] == 1


@pytest.mark.asyncio
async def test_http2_downstream_prior_knowledge(mesh: Mesh) -> None:
    async with httpx.AsyncClient(
        base_url=mesh.http_url, http1=False, http2=True, trust_env=False
    ) as client:
        responses = await asyncio.gather(
            *(client.get(f"/{i}", headers={"host": "web"}) for i in range(5))
        )
    assert [r.http_version for r in responses] == ["HTTP/2"] * 5
    assert sorted(r.json()["path"] for r in responses) == [f"/{i}" for i in range(5)]


@pytest.mark.asyncio
async def test_grpc_through_envoy(mesh: Mesh) -> None:
    async with EchoClient(mesh.http_address, authority="echo") as client:
        assert await client.unary(b"hi") == b"echo:hi"
        assert await client.stream(4) == [b"echo:0", b"echo:1", b"echo:2", b"echo:3"]
        assert await client.bidi([b"x", b"y", b"z"]) == [b"echo:x", b"echo:y", b"echo:z"]
    assert mesh.echo.calls == {"Unary": 1, "Stream": 1, "Bidi": 1}


@pytest.mark.asyncio
async def test_tcp_through_envoy(mesh: Mesh) -> None:
    reader, writer = await asyncio.open_connection(*mesh.tcp_address)
    try:
        assert await asyncio.wait_for(reader.readline(), 10) == b"db\n"
        writer.write(b"through envoy")
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(13), 10) == b"through envoy"
    finally:
        writer.close()
        await writer.wait_closed()
    assert mesh.db.connections == 1
    await mesh.envoy.wait_for_stat("tcp.tcp.downstream_cx_total")
