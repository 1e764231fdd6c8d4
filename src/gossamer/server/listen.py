"""Where the control plane may listen: loopback only, unless the operator accepts the risk.

The REST API and xDS have no authentication and no TLS yet (the identity issue brings
both): anyone who reaches them can change the mesh or impersonate a proxy. So binding them
to an address other hosts can reach is refused unless ``--insecure-listen`` is given.
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
                f"{flag}: {host}:{port} is not a loopback address, and the control plane's "
                "REST API and xDS have no authentication or TLS yet: anyone who reaches them "
                "can change the mesh. Listen on 127.0.0.1 (and reach it through an SSH tunnel "
                "or a TLS proxy), or pass --insecure-listen to accept the risk on a network "
                "you trust"
            )
