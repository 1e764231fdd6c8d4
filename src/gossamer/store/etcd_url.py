"""What ``--store etcd://h1:2379,h2:2379/prefix`` names, and the etcd limits Gossamer needs.

Limits: one ``apply`` is one etcd transaction holding, per resource, a compare (the key's
mod revision as read) and a put or delete, plus one compare of the store's identity key. So
the API's largest apply (``--max-request-bytes`` 16 MiB of manifests: about 210,000 of the
smallest valid resource, 80 bytes) needs etcd's ``--max-txn-ops`` above 210,001 and its
``--max-request-bytes`` about three times 16 MiB (each key appears twice beside its value;
``tests/unit/store/test_etcd_limits.py`` builds that worst case). etcd's defaults (128
operations, 1.5 MiB) hold about 120 small resources.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gossamer.errors import ConfigError

#: etcd's ``--max-txn-ops`` that docs/store.md and the tests use (2**18)
RECOMMENDED_MAX_TXN_OPS = 262_144
#: etcd's ``--max-request-bytes`` that docs/store.md and the tests use (64 MiB)
RECOMMENDED_MAX_REQUEST_BYTES = 64 * 1024 * 1024
#: the key prefix of a store when the URL names none
DEFAULT_PREFIX = "/gossamer"
DEFAULT_PORT = 2379

_FORM = "etcd://HOST:PORT[,HOST:PORT...][/prefix], e.g. etcd://10.0.0.1:2379,10.0.0.2:2379"


@dataclass(frozen=True, slots=True)
class EtcdLocation:
    #: ``host:port`` of each member, as gRPC targets (IPv6 hosts in brackets)
    endpoints: tuple[str, ...]
    #: every key of the store starts with this (no trailing slash)
    prefix: str

    def __str__(self) -> str:
        return f"etcd://{','.join(self.endpoints)}{self.prefix}"


def parse_etcd_url(text: str) -> EtcdLocation:
    """Parse ``etcd://h1:2379,h2:2379/prefix``; raise ``ConfigError`` saying what is wrong."""
    scheme, sep, rest = text.strip().partition("://")
    if not sep or scheme.lower() != "etcd":
        raise ConfigError(f"store location {text!r} is not an etcd URL; write {_FORM}")
    hosts, slash, path = rest.partition("/")
    if "?" in path or "#" in path:
        raise ConfigError(
            f"store location {text!r}: an etcd URL takes no query or fragment; write {_FORM}"
        )
    prefix = "/" + path.strip("/") if slash and path.strip("/") else DEFAULT_PREFIX
    if "//" in prefix:
        raise ConfigError(f"store location {text!r}: the key prefix {prefix!r} has '//'")
    endpoints = tuple(_endpoint(part.strip(), text) for part in hosts.split(","))
    if len(set(endpoints)) != len(endpoints):
        raise ConfigError(f"store location {text!r} names a member twice")
    return EtcdLocation(endpoints, prefix)


def _endpoint(part: str, text: str) -> str:
    if not part:
        raise ConfigError(f"store location {text!r} names an empty member; write {_FORM}")
    if part.startswith("["):
        host, close, after = part[1:].partition("]")
        if not close or (after and not after.startswith(":")):
            raise ConfigError(
                f"store location {text!r}: bad IPv6 member {part!r}; write [::1]:2379"
            )
        port_text = after[1:] if after else str(DEFAULT_PORT)
        bracketed = f"[{host}]"
    else:
        host, colon, port_text = part.partition(":")
        if ":" in port_text:
            raise ConfigError(
                f"store location {text!r}: write an IPv6 member in brackets ([::1]:2379)"
            )
        port_text = port_text if colon else str(DEFAULT_PORT)
        bracketed = host
    if not host or any(c in host for c in " /@"):
        raise ConfigError(f"store location {text!r}: {part!r} is not HOST:PORT; write {_FORM}")
    if part.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"store location {text!r}: {host!r} is not an IPv6 address") from None
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise ConfigError(f"store location {text!r}: member {part!r} has no valid port (1-65535)")
    return f"{bracketed}:{int(port_text)}"
