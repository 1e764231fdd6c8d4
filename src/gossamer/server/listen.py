"""Where the control plane may serve plaintext: loopback only, unless the operator accepts
the risk.

Over TLS (the REST API by default, xDS in ``--xds-tls required`` mode) any address is
fine: clients verify the server and prove themselves. Plaintext xDS (``--xds-tls off`` or
``optional``) lets anyone who reaches it read any proxy's configuration, so a plaintext
listener on an address other hosts can reach is refused unless ``--insecure-listen`` is
given. A plaintext REST API (``--api-tls off``) is refused off loopback outright
(``server.app.check_api_tls``): tokens would cross the network in the clear.
"""

from __future__ import annotations

import ipaddress

from gossamer.errors import ConfigError


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also IPv4-mapped) and ``localhost``; never resolves names.

    ``0.0.0.0`` and ``::`` (every interface) are not loopback.
    """
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def check_listen_addresses(addresses: dict[str, tuple[str, int]], *, insecure_listen: bool) -> None:
    """Refuse (before anything is bound) a non-loopback address for any ``{flag: (host, port)}``
    unless ``insecure_listen``."""
    if insecure_listen:
        return
    for flag, (host, port) in addresses.items():
        if not is_loopback(host):
            raise ConfigError(
                f"{flag}: {host}:{port} is not a loopback address, and xDS is served there "
                "in plaintext (--xds-tls off or optional): anyone who reaches it can read "
                "any proxy's configuration. Use --xds-tls required (mTLS only, on this "
                "address), listen on 127.0.0.1, or pass --insecure-listen to accept the "
                "risk on a network you trust"
            )
