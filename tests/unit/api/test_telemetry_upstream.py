"""``TelemetryUpstream.get`` forwards a decoded path percent-encoded again: a trace id
with control characters or spaces (``GET /v1/traces/%02x%20y``) reaches the telemetry
service as the caller sent it, instead of failing the control plane (found by
``bench/fuzz_api.py``: 500 InvalidURL)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gossamer.api.telemetry import TelemetryUpstream

pytestmark = pytest.mark.asyncio


async def test_a_path_with_any_character_is_forwarded_encoded(tmp_path: Path) -> None:
    lines: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines.append(await reader.readline())
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        (tmp_path / "token").write_text("t\n")
        upstream = TelemetryUpstream(f"http://127.0.0.1:{port}", tmp_path / "token", "hint")
        got = await upstream.get("/v1/traces/\x02x y\x7f\u00b4", "")
    assert got.status_code == 404
    assert lines == [b"GET /v1/traces/%02x%20y%7F%C2%B4 HTTP/1.1\r\n"]
