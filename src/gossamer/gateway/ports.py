"""Is a TCP port on this host free? Checked before Envoy is started, so a clash is a clear
error instead of an Envoy that exits or NACKs its listener."""

from __future__ import annotations

import ipaddress
import socket

from gossamer.errors import ConfigError


def _family(host: str) -> socket.AddressFamily:
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        raise ConfigError(f"{host!r} is not an IP address; write e.g. 127.0.0.1") from None
    return socket.AF_INET6 if version == 6 else socket.AF_INET


def is_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` now (TIME_WAIT leftovers count as free)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str) -> int:
    """A port that was free on ``host`` a moment ago (picked by the OS)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, 0))
        except OSError as e:
            raise ConfigError(
                f"cannot bind a port on {host}: {e.strerror}; use an address "
                "of this host such as 127.0.0.1"
            ) from None
        port: int = sock.getsockname()[1]
        return port
