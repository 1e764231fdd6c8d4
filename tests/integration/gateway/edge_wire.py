"""Raw HTTP on both sides of a gateway: a client that sends exactly the bytes given (HTTP/1.1
or HTTP/2 with the ``h2`` library, no normalisation), and a backend that records each
request head exactly as it arrived."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events

#: how long one exchange may take (Envoy answers in milliseconds)
TIMEOUT = 10.0
_MAX_HEAD = 64 * 1024


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class RawBackend:
    """Answers 200 to every request, echoing its head; records heads as received.

    A request carrying ``Upgrade`` is answered 200 (not 101), the CVE-2024-23326 case: if
    Envoy took that for an upgrade, whatever the client sends next would come through here
    as raw bytes, not as a request Envoy parsed (every request Envoy forwards carries the
    ``x-request-id`` it sets).
    """

    name: str
    host: str
    port: int = 0
    heads: list[bytes] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def heads_with(self, needle: bytes) -> list[bytes]:
        return [h for h in self.heads if needle.lower() in h.lower()]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(1000):  # requests on one connection, bounded
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = _content_length(head)
                if length:
                    await reader.readexactly(length)
                body = f"{self.name}\n".encode() + head
                writer.write(
                    b"HTTP/1.1 200 OK\r\nx-backend: "
                    + self.name.encode()
                    + b"\r\ncontent-type: text/plain\r\ncontent-length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_backend(name: str, host: str) -> AsyncIterator[RawBackend]:
    backend = RawBackend(name, host)
    server = await asyncio.start_server(backend._serve, host, 0, limit=_MAX_HEAD)
    backend.port = server.sockets[0].getsockname()[1]
    async with server:
        yield backend


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(status, headers, body)


async def http1(address: tuple[str, int], request: bytes, *, then: bytes = b"") -> Answer:
    """Send ``request`` as is, read one answer; ``then`` is sent after it (same connection)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(_read_answer(reader), TIMEOUT)
        if then:
            with contextlib.suppress(ConnectionError):
                writer.write(then)
                await writer.drain()
                # Envoy either answers it as a new request or closes: wait for either.
                with contextlib.suppress(asyncio.IncompleteReadError, TimeoutError):
                    await asyncio.wait_for(reader.read(65536), TIMEOUT)
        return answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def request(path: str, host: str, *headers: str) -> bytes:
    """An HTTP/1.1 GET with ``Host: host`` and ``headers`` ("name: value"), as bytes."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def http2(address: tuple[str, int], headers: Sequence[tuple[bytes, bytes]]) -> Answer:
    """One HTTP/2 (prior knowledge, cleartext) request with ``headers`` sent unchanged."""
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )
    conn = h2.connection.H2Connection(config)
    reader, writer = await asyncio.open_connection(*address)
    try:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, list(headers), end_stream=True)
        writer.write(conn.data_to_send())
        await writer.drain()
        return await asyncio.wait_for(_h2_answer(conn, stream, reader, writer), TIMEOUT)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _h2_answer(
    conn: h2.connection.H2Connection,
    stream: int,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> Answer:
    status, found, body = 0, {}, b""
    for _ in range(10_000):  # frames, bounded
        data = await reader.read(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                found = {bytes(k).decode(): bytes(v).decode() for k, v in event.headers or []}
                status = int(found.pop(":status"))
            elif isinstance(event, h2.events.DataReceived):
                body += event.data or b""
                conn.acknowledge_received_data(event.flow_controlled_length or 0, stream)
            elif isinstance(
                event,
                h2.events.StreamEnded | h2.events.StreamReset | h2.events.ConnectionTerminated,
            ):
                return Answer(status, found, body)
        writer.write(conn.data_to_send())
        await writer.drain()
    return Answer(status, found, body)
