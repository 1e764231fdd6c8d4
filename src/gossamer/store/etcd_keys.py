"""How an etcd store lays out its keys, and etcd key-values as stored resources.

``<prefix>/r/<kind>/<namespace>/<name>`` holds a resource's canonical JSON, each part
percent-encoded (so a ``/`` in a part cannot be taken for a separator);
``<prefix>/meta/store-id`` holds the store's identity (``etcd_identity.py``);
``<prefix>/meta/written`` is put by every transaction that writes resources, so its mod
revision is the newest such write's (``etcd_txn.py``);
``<prefix>/presence/<host>/<replica>`` says a replica sees that host alive, bound to the
replica's lease (``etcd_presence.py``), and ``<prefix>/replica/<replica>`` holds what else
it shares with the others (a document, bound to the same lease), and ``<prefix>/kept``
what they keep between them beyond any lease; ``<prefix>/leader/<role>``
names the replica leading that role, bound to its lease, and its create revision is the
fencing token (``etcd_leader.py``). A store revision is the etcd revision minus the
store's base (the identity key's create revision).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from gossamer.errors import StoreError
from gossamer.store.base import StoredResource
from gossamer.types import ResourceKey


def _part(text: str) -> str:
    return quote(text, safe="")


def prefix_end(key: bytes) -> bytes:
    """The end of the range of every key starting with ``key`` (etcd's ``range_end``)."""
    trimmed = key.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


@dataclass(frozen=True, slots=True)
class EtcdKeys:
    prefix: str

    @property
    def resources(self) -> bytes:
        """Every resource key starts with this."""
        return f"{self.prefix}/r/".encode()

    @property
    def resources_end(self) -> bytes:
        return prefix_end(self.resources)

    def key(self, key: ResourceKey) -> bytes:
        return (
            f"{self.prefix}/r/{_part(key.kind)}/{_part(key.namespace)}/{_part(key.name)}"
        ).encode()

    def scope(self, kind: str | None, namespace: str | None) -> tuple[bytes, bytes]:
        """The narrowest key range holding a listing's resources (a namespace alone is
        filtered after reading)."""
        if kind is None:
            return self.resources, self.resources_end
        start = f"{self.prefix}/r/{_part(kind)}/"
        if namespace is not None:
            start += f"{_part(namespace)}/"
        return start.encode(), prefix_end(start.encode())

    @property
    def presence(self) -> bytes:
        """Every presence key starts with this."""
        return f"{self.prefix}/presence/".encode()

    @property
    def replicas(self) -> bytes:
        """Every replica's shared document's key starts with this."""
        return f"{self.prefix}/replica/".encode()

    def replica_key(self, replica: str) -> bytes:
        return self.replicas + _part(replica).encode()

    @property
    def written(self) -> bytes:
        """Put by every transaction writing resources: its mod revision is the newest's."""
        return f"{self.prefix}/meta/written".encode()

    @property
    def kept(self) -> bytes:
        """The document the replicas keep between them, beyond any one's lease."""
        return f"{self.prefix}/kept".encode()

    def replica_of(self, raw: bytes) -> str | None:
        """The replica of a shared document's key; None for a key that is none."""
        name = raw[len(self.replicas) :].decode(errors="replace")
        if not raw.startswith(self.replicas) or not name or "/" in name:
            return None
        return unquote(name)

    def leader_key(self, role: str) -> bytes:
        return f"{self.prefix}/leader/{_part(role)}".encode()

    def presence_key(self, host: str, replica: str) -> bytes:
        return f"{self.prefix}/presence/{_part(host)}/{_part(replica)}".encode()

    def presence_of(self, raw: bytes) -> tuple[str, str] | None:
        """``(host, replica)`` of a presence key; None for a key that is none."""
        parts = raw[len(self.presence) :].decode(errors="replace").split("/")
        if not raw.startswith(self.presence) or len(parts) != 2 or not all(parts):
            return None
        return unquote(parts[0]), unquote(parts[1])

    def resource_key(self, raw: bytes) -> ResourceKey:
        head = self.resources
        parts = raw[len(head) :].decode().split("/") if raw.startswith(head) else []
        if len(parts) != 3 or not all(parts):
            raise StoreError(
                f"the etcd key {raw!r} under {head.decode()} is not one of Gossamer's "
                "(kind/namespace/name); remove it, nothing else writes there"
            )
        return ResourceKey(*(unquote(part) for part in parts))

    def stored(self, kv: Any, base: int) -> StoredResource:
        """An etcd ``KeyValue`` as a resource, its revisions made store revisions."""
        return StoredResource(
            self.resource_key(kv.key),
            json.loads(kv.value),
            int(kv.mod_revision) - base,
            int(kv.create_revision) - base,
        )
