"""Free ports and simulated hosts on loopback.

On Linux every address in 127.0.0.0/8 is local without any set-up, so tests simulate
hosts as 127.0.0.2, 127.0.0.3, ...
"""

from __future__ import annotations

import asyncio
import ipaddress

from gossamer import ports
from gossamer.errors import ConfigError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago, outside the ephemeral range
    (``gossamer.ports.PortPicker``), not handed out before by this process, nor lately by
    another of this user's (``gossamer.port_claims``).

    A process that does not claim its ports may still take it before you bind it; prefer
    binding port 0 yourself when the program allows it.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"host {host!r} is not an IP address; use e.g. '127.0.0.1'") from None
    return ports.free_port(host)


def loopback_host(n: int) -> str:
    """The loopback address of simulated host ``n``: 0 -> 127.0.0.1, 1 -> 127.0.0.2, ..."""
    if not 0 <= n <= 253:
        raise ConfigError(f"loopback_host: n must be 0..253, got {n}")
    return f"127.0.0.{n + 1}"


async def accepting(host: str, port: int) -> bool:
    """Does something accept TCP connections on ``host:port`` now? (For ``wait_until``.)"""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True
