"""A second xDS server on a port already served fails to start, naming the port and the
flag to change (with gRPC's default ``SO_REUSEPORT`` both bound it, and the kernel split
the Envoys' connections between two control planes). Real servers on loopback."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from gossamer.errors import ConfigError
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.server import XdsServer

pytestmark = pytest.mark.asyncio


def server() -> XdsServer:
    return XdsServer(SnapshotCache(), XdsMonitor(CollectorRegistry()))


async def test_a_port_another_xds_server_serves_is_refused() -> None:
    first, second = server(), server()
    port = await first.start("127.0.0.1", 0)
    try:
        with pytest.raises(
            ConfigError, match=rf"cannot listen for xDS on 127\.0\.0\.1:{port}.*--xds-addr"
        ):
            await second.start("127.0.0.1", port)
    finally:
        await second.stop()
        await first.stop()
