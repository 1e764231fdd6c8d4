"""The in-process backends, talked to directly (no Envoy)."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.testing.backends import EchoClient, GrpcBackend, HttpBackend, TcpEchoBackend


@pytest.mark.asyncio
@pytest.mark.parametrize("http2", [False, True])
async def test_http_backend_answers_http1_and_h2c(http2: bool) -> None:
    async with HttpBackend("web-1", host="127.0.0.2") as backend:
        assert backend.address[0] == "127.0.0.2"
        async with httpx.AsyncClient(http1=not http2, http2=http2, trust_env=False) as client:
            response = await client.post(
                f"{backend.url}/hello?x=1", content=b"abc", headers={"x-test": "yes"}
            )
    assert response.status_code == 200
    assert response.headers["x-backend"] == "web-1"
    body = response.json()
    assert body["backend"] == "web-1"
    assert (body["method"], body["path"], body["query"]) == ("POST", "/hello", "x=1")
    assert body["http_version"] == ("2" if http2 else "1.1")
    assert body["headers"]["x-test"] == "yes"
    assert body["body_bytes"] == 3
    assert backend.requests == 1
    assert backend.seen[-1].path == "/hello"


@pytest.mark.asyncio
async def test_http_backend_status_and_delay_paths() -> None:
    async with HttpBackend("web-1") as backend, httpx.AsyncClient(trust_env=False) as client:
        assert (await client.get(f"{backend.url}/status/503")).status_code == 503
        assert (await client.get(f"{backend.url}/status/102")).status_code == 400
        delayed = await client.get(f"{backend.url}/delay/20")
        assert delayed.status_code == 200
        assert backend.requests_by_path == {"/status/503": 1, "/status/102": 1, "/delay/20": 1}


@pytest.mark.asyncio
async def test_http_backend_stops_listening_on_exit() -> None:
    async with HttpBackend("web-1") as backend:
        url = backend.url
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url)


@pytest.mark.asyncio
async def test_grpc_backend_unary_stream_and_bidi() -> None:
    async with (
        GrpcBackend("echo-1", host="127.0.0.3") as backend,
        EchoClient(backend.address) as client,
    ):
        assert backend.address[0] == "127.0.0.3"
        assert await client.unary(b"ping") == b"echo-1:ping"
        assert await client.stream(3) == [b"echo-1:0", b"echo-1:1", b"echo-1:2"]
        assert await client.bidi([b"a", b"b"]) == [b"echo-1:a", b"echo-1:b"]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.stream(1_000_000)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert backend.calls == {"Unary": 1, "Stream": 2, "Bidi": 1}


@pytest.mark.asyncio
async def test_tcp_echo_backend_greets_then_echoes() -> None:
    async with TcpEchoBackend("db-1", host="127.0.0.2") as backend:
        reader, writer = await asyncio.open_connection(*backend.address)
        try:
            assert await reader.readline() == b"db-1\n"
            writer.write(b"hello")
            await writer.drain()
            assert await reader.readexactly(5) == b"hello"
        finally:
            writer.close()
            await writer.wait_closed()
        assert backend.connections == 1
        assert backend.received == [b"hello"]
        # a bare connect (a health check) is a connection but carries nothing
        _, writer = await asyncio.open_connection(*backend.address)
        writer.close()
        await writer.wait_closed()
        await wait_until(lambda: backend.connections == 2, timeout=10, what="the bare connect")
        assert backend.received == [b"hello"]


@pytest.mark.asyncio
async def test_tcp_echo_backend_closes_open_connections_on_exit() -> None:
    async with TcpEchoBackend("db-1") as backend:
        reader, writer = await asyncio.open_connection(*backend.address)
        await reader.readline()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
