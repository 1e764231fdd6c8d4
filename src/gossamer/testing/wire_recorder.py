"""Record what an in-process control plane receives and sends, as the bytes themselves.

TEST ONLY. ``recording_control_plane_io()`` patches, for as long as it is open, the two
places every byte reaches the control plane through:

- the REST API's connection protocol (``GuardedHttpProtocol.data_received``): each chunk
  of every connection, after TLS is removed and before HTTP is parsed: request lines,
  headers and bodies exactly as sent;
- the xDS servicer (``_Servicer._serve``): every message read from and written to each
  ADS stream (SotW and delta, both ports), serialized as on the wire.

Nothing is decoded or filtered, so a scan of these bytes sees what an attacker with the
control plane's memory or a debugging proxy in front of it would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gossamer.server.connection_guard import GuardedHttpProtocol
from gossamer.xds.server import _Servicer


@dataclass
class ControlPlaneIo:
    #: every chunk the REST API read, in order, all connections
    api_received: list[bytes] = field(default_factory=list)
    #: every xDS request read, serialized
    xds_received: list[bytes] = field(default_factory=list)
    #: every xDS response written, serialized
    xds_sent: list[bytes] = field(default_factory=list)

    def api_bytes(self, start: int = 0) -> bytes:
        return b"".join(self.api_received[start:])


class _RecordingContext:
    """An ADS stream's gRPC context whose reads and writes are recorded."""

    def __init__(self, inner: Any, io: ControlPlaneIo) -> None:
        self._inner = inner
        self._io = io

    async def read(self) -> Any:
        msg = await self._inner.read()
        if hasattr(msg, "SerializeToString"):
            self._io.xds_received.append(msg.SerializeToString())
        return msg

    async def write(self, msg: Any) -> None:
        # the server writes responses as their wire bytes (``xds.wire``)
        self._io.xds_sent.append(msg if isinstance(msg, bytes) else msg.SerializeToString())
        await self._inner.write(msg)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextlib.contextmanager
def recording_control_plane_io() -> Iterator[ControlPlaneIo]:
    """Record every REST and xDS byte any in-process control plane receives (and the xDS
    it sends) while open; restores the originals after."""
    io = ControlPlaneIo()
    original_received = GuardedHttpProtocol.data_received
    original_serve = _Servicer._serve

    def data_received(self: GuardedHttpProtocol, data: bytes) -> None:
        io.api_received.append(bytes(data))
        original_received(self, data)

    async def serve(self: _Servicer, context: Any, *, delta: bool) -> None:
        await original_serve(self, _RecordingContext(context, io), delta=delta)

    GuardedHttpProtocol.data_received = data_received  # type: ignore[method-assign]
    _Servicer._serve = serve  # type: ignore[method-assign]
    try:
        yield io
    finally:
        GuardedHttpProtocol.data_received = original_received  # type: ignore[method-assign]
        _Servicer._serve = original_serve  # type: ignore[method-assign]
