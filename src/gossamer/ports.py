"""Ports on this host: a free one to use (outside the ephemeral range), is one free, and
if not, which process holds it (best effort, from ``/proc/net/tcp*`` and ``/proc/*/fd``)."""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import os
import socket
from collections.abc import Sequence
from pathlib import Path

from gossamer.errors import ConfigError
from gossamer.port_claims import PortClaims, claims_directory

_LISTEN = "0A"


def _family(address: str) -> socket.AddressFamily:
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        raise ConfigError(f"{address!r} is not an IP address; write e.g. 127.0.0.3") from None
    return socket.AF_INET6 if version == 6 else socket.AF_INET


#: the lowest port ``free_port`` hands out (Consul's sidecar ports start at 21000 for the
#: same reason: below the ephemeral range, above the usual fixed ports of servers)
PICK_LOW = 20000
#: the ephemeral range when ``/proc`` does not say (Linux's default)
EPHEMERAL_DEFAULT = (32768, 60999)


def ephemeral_range(proc: Path = Path("/proc")) -> tuple[int, int]:
    """The ports the kernel gives outgoing connections and port-0 binds (inclusive)."""
    try:
        low, high = (proc / "sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return EPHEMERAL_DEFAULT


class PortPicker:
    """Free ports from ``[low, high)``, in sequence from ``start``, never the ephemeral
    range: a port handed out there could become an outgoing connection's source port, or
    another process's port-0 listener (gRPC's and Envoy's with ``SO_REUSEPORT``, which
    then share it), before whoever asked binds it. Handing out in sequence, one process
    never gives the same port twice before wrapping around, so two ports asked for in a
    row and bound later (an Envoy's admin and inbound ports) differ. With ``claims``, no
    port another process claimed lately either (``PortClaims``), unless every free one
    was."""

    def __init__(self, low: int, high: int, start: int, claims: PortClaims | None = None) -> None:
        if not low < high or not low <= start < high:
            raise ConfigError(f"PortPicker: need low <= start < high, got {low}, {start}, {high}")
        self.low, self.high = low, high
        self._next = start
        self.claims = claims

    @classmethod
    def for_this_process(
        cls, proc: Path = Path("/proc"), claims: PortClaims | None = None
    ) -> PortPicker | None:
        """Below the ephemeral range, starting where this process's id points (so
        processes asking at once start apart), with ``claims``; None when the range leaves
        no room."""
        low, high = PICK_LOW, ephemeral_range(proc)[0]
        if high - low < 1000:
            return None
        return cls(low, high, low + (os.getpid() * 7919) % (high - low), claims)

    def pick(self, address: str) -> int:
        family = _family(address)
        for claims in (self.claims, None) if self.claims else (None,):
            for _ in range(self.high - self.low):
                port = self._next
                self._next = self.low if port + 1 >= self.high else port + 1
                if _bindable(family, address, port) and (claims is None or claims.claim(port)):
                    return port
        raise ConfigError(
            f"no free port on {address} in {self.low}..{self.high - 1}: every one is in "
            "use; what holds that many ports?"
        )


def _bindable(family: socket.AddressFamily, address: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise _unbindable(address, e) from None
    return True


@functools.cache
def _picker() -> PortPicker | None:
    """This process's picker: one sequence per process is the point; the claims are
    shared with this user's other processes."""
    return PortPicker.for_this_process(claims=PortClaims.private(claims_directory()))


def free_port(address: str) -> int:
    """A port free on ``address`` right now, outside the ephemeral range where this host
    leaves room for one (``PortPicker``), else one the OS picks."""
    picker = _picker()
    if picker is not None:
        return picker.pick(address)
    with socket.socket(_family(address), socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError as e:
            raise _unbindable(address, e) from None
        port: int = sock.getsockname()[1]
        return port


def _unbindable(address: str, e: OSError) -> ConfigError:
    return ConfigError(
        f"cannot bind a port on {address}: {e.strerror}; is {address} an address of this host?"
    )


def is_free(address: str, port: int) -> bool:
    """Whether nothing listens on ``address:port`` (a port in TIME_WAIT counts as free)."""
    with socket.socket(_family(address), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
        return True


def require_free(address: str, port: int, what: str) -> None:
    """Raise ``ConfigError`` naming the process that holds ``address:port``, if any does."""
    if is_free(address, port):
        return
    holder = port_holder(address, port)
    who = f"held by {holder}" if holder else "in use by another process"
    raise ConfigError(
        f"{what}: {address}:{port} is {who}; stop that process or choose another port"
    )


def _decode(hex_address: str) -> tuple[str, int]:
    host_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(host_hex)
    if len(raw) == 4:
        host = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # four little-endian 32-bit words
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        host = socket.inet_ntop(socket.AF_INET6, words)
    return host, int(port_hex, 16)


def listening_inodes(address: str, port: int, proc: Path = Path("/proc")) -> set[int]:
    """Socket inodes listening on ``address:port`` (or on the wildcard address, same port)."""
    wanted = ipaddress.ip_address(address)
    inodes: set[int] = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            host, local_port = _decode(fields[1])
            if local_port != port:
                continue
            bound = ipaddress.ip_address(host)
            if bound == wanted or bound.is_unspecified:
                inodes.add(int(fields[9]))
    return inodes


def port_holder(address: str, port: int, proc: Path = Path("/proc")) -> str | None:
    """``pid N (command)`` of a process listening on ``address:port``; None if not found
    (no procfs, or the process belongs to another user)."""
    inodes = listening_inodes(address, port, proc)
    if not inodes:
        return None
    targets = {f"socket:[{i}]" for i in inodes}
    with contextlib.suppress(OSError):
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fds = list((entry / "fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    link = os.readlink(fd)
                except OSError:
                    continue
                if link in targets:
                    return f"pid {entry.name} ({_command(entry)})"
    return None


def _command(entry: Path) -> str:
    try:
        argv = (entry / "cmdline").read_bytes().split(b"\0")
        line = " ".join(a.decode("utf-8", "replace") for a in argv if a)
    except OSError:
        line = ""
    if not line:
        try:
            line = (entry / "comm").read_text().strip()
        except OSError:
            line = "?"
    return line if len(line) <= 120 else line[:117] + "..."


#: a host (name or IP address) and a port
Address = tuple[str, int]


def parse_host_port(text: str, option: str, *, min_port: int = 0) -> Address:
    """``HOST:PORT`` (``[v6]:PORT`` too) as ``(host, port)``; ``ConfigError`` naming
    ``option`` otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not min_port <= int(port) <= 65535:
        raise ConfigError(
            f"{option}: {text!r} is not HOST:PORT with a port {min_port}..65535; "
            "write e.g. 127.0.0.1:18000"
        )
    return host.strip("[]"), int(port)


def parse_host_ports(text: str, option: str) -> tuple[Address, ...]:
    """One ``HOST:PORT`` or several, comma-separated (a control plane's replicas), each
    once."""
    addresses = tuple(parse_host_port(part, option, min_port=1) for part in text.split(","))
    if len(set(addresses)) < len(addresses):
        raise ConfigError(f"{option}: {text!r} names an address twice; name each once")
    return addresses


def host_port(address: Address) -> str:
    """``HOST:PORT``, an IPv6 host in brackets."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_ports(addresses: Sequence[Address]) -> str:
    """``HOST:PORT,HOST:PORT``: what ``parse_host_ports`` reads."""
    return ",".join(host_port(a) for a in addresses)
