"""xDS responses encoded from resources serialised once, without building protobufs.

Every resource of a snapshot is serialised once, where the snapshot is built (a worker
thread, for the control plane), and kept as the bytes of its ``google.protobuf.Any``
(``Versioned.wire``). A response to one stream is then a join of those bytes with a few
small fields of its own (version, type, nonce): every stream sent a resource shares that
one encoding, and no ``DiscoveryResponse`` is built or serialised per stream. A response
carrying many resources (a gateway's 1,000 clusters) is joined once per distinct content
and shared by every stream sent that content (``ResponseEncoder``).

The bytes are those ``SerializeToString(deterministic=True)`` gives for the same message
(fields in number order, empty ones left out): tests compare the two.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (``serializer`` imports this module)
    from gossamer.xds.serializer import Versioned
    from gossamer.xds.typestate import Outgoing

_LEN = 2  # the length-delimited wire type

#: field numbers (envoy.service.discovery.v3)
_VERSION_INFO, _RESOURCES, _TYPE_URL, _NONCE = 1, 2, 4, 5  # DiscoveryResponse
_REMOVED = 6  # DeltaDiscoveryResponse.removed_resources (1, 2, 4, 5 as above)
_R_VERSION, _R_RESOURCE, _R_NAME = 1, 2, 3  # Resource

#: a joined resource block is shared when it carries at least this many resources (below
#: that, joining per stream costs less than looking the block up)
SHARE_FROM = 8
#: distinct resource blocks kept (least recently used dropped first)
BLOCKS_KEPT = 256


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(field: int) -> bytes:
    return varint(field << 3 | _LEN)


_KEYS = {f: _key(f) for f in range(1, 16)}


def field(number: int, payload: bytes) -> list[bytes]:
    """A length-delimited field as pieces to join (the payload is not copied here)."""
    return [_KEYS[number], varint(len(payload)), payload]


def text(number: int, value: str) -> list[bytes]:
    """A string field; proto3 leaves an empty one out."""
    return field(number, value.encode()) if value else []


def any_wire(type_url: str, *value: bytes) -> bytes:
    """An encoded ``google.protobuf.Any`` of the message encoded as ``value`` (its parts
    joined here: a 4.6 MB route table given in parts is copied once)."""
    size = varint(sum(map(len, value)))
    return b"".join([*text(1, type_url), _KEYS[2], size, *value])


def _delta_resource(r: Versioned) -> list[bytes]:
    body = [*text(_R_VERSION, r.version), *field(_R_RESOURCE, r.wire), *text(_R_NAME, r.name)]
    return [_KEYS[_RESOURCES], varint(sum(map(len, body))), *body]


def resource_pieces(resources: Sequence[Versioned], delta: bool) -> list[bytes]:
    """The ``resources`` field of a response carrying ``resources``, as pieces to join
    (no resource's bytes are copied here)."""
    pieces: list[bytes] = []
    for r in resources:
        pieces += _delta_resource(r) if delta else field(_RESOURCES, r.wire)
    return pieces


def resource_block(resources: Sequence[Versioned], delta: bool) -> bytes:
    """The ``resources`` field of a response carrying ``resources``, encoded."""
    return b"".join(resource_pieces(resources, delta))


class ResponseEncoder:
    """Encodes the responses of every stream of a server; shares what streams have in
    common. One per server (its cache is bounded: ``BLOCKS_KEPT`` blocks)."""

    def __init__(self, kept: int = BLOCKS_KEPT) -> None:
        self._kept = kept
        self._blocks: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        #: blocks joined and blocks shared (found already joined), for tests and benches
        self.joined = 0
        self.shared = 0

    def block(self, out: Outgoing, delta: bool) -> list[bytes]:
        """The encoded resources of ``out``, as pieces: one object for every stream sent
        the same resources (when there are ``SHARE_FROM`` or more); below that, each
        resource's bytes as they are, joined once with the rest of the response (a
        gateway's 4.6 MB route table was copied twice)."""
        if len(out.resources) < SHARE_FROM:
            self.joined += 1
            return resource_pieces(out.resources, delta)
        key = (delta, out.type, tuple((r.name, r.version) for r in out.resources))
        found = self._blocks.get(key)
        if found is not None:
            self._blocks.move_to_end(key)
            self.shared += 1
            return [found]
        self.joined += 1
        made = self._blocks[key] = resource_block(out.resources, delta)
        if len(self._blocks) > self._kept:
            self._blocks.popitem(last=False)
        return [made]

    def encode(self, out: Outgoing, delta: bool) -> bytes:
        """``out`` as the bytes of a ``DiscoveryResponse`` (``DeltaDiscoveryResponse``)."""
        pieces = [
            *text(_VERSION_INFO, out.version),
            *self.block(out, delta),
            *text(_TYPE_URL, out.type.url),
            *text(_NONCE, out.nonce),
        ]
        if delta:
            for name in out.removed:
                pieces += field(_REMOVED, name.encode())  # (repeated: never left out)
        return b"".join(pieces)
