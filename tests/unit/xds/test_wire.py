"""Responses encoded from the resources' bytes (``gossamer.xds.wire``): the same bytes as
the protobuf they stand for, one encoding of what streams are sent in common, and none
shared between different contents."""

from __future__ import annotations

import pytest
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from xds_fakes import cla, cluster, route

from gossamer.xds import wire
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer, Versioned
from gossamer.xds.typestate import Outgoing
from gossamer.xds.wire import ResponseEncoder

C, E, R = ResourceType.CLUSTER, ResourceType.ENDPOINT, ResourceType.ROUTE


def clusters(n: int, rev: int = 1) -> tuple[Versioned, ...]:
    s = Serializer()
    return tuple(s.versioned(C, f"c{i}", cluster(f"c{i}", rev)) for i in range(n))


def sotw(out: Outgoing) -> bytes:
    """What the stream built before: a DiscoveryResponse, serialised."""
    return discovery_pb2.DiscoveryResponse(
        version_info=out.version,
        type_url=out.type.url,
        nonce=out.nonce,
        resources=[any_pb2.Any.FromString(r.wire) for r in out.resources],
    ).SerializeToString(deterministic=True)


def delta(out: Outgoing) -> bytes:
    return discovery_pb2.DeltaDiscoveryResponse(
        system_version_info=out.version,
        type_url=out.type.url,
        nonce=out.nonce,
        resources=[
            discovery_pb2.Resource(name=r.name, version=r.version, resource=r.resource)
            for r in out.resources
        ],
        removed_resources=list(out.removed),
    ).SerializeToString(deterministic=True)


@pytest.mark.parametrize("n", [0, 1, 3, wire.SHARE_FROM, 200])
@pytest.mark.parametrize("nonce", ["", "7", "123456"])
def test_the_bytes_are_the_protobufs(n: int, nonce: str) -> None:
    out = Outgoing(C, nonce, "v" * 16 if n else "", clusters(n), ("gone-1", "", "gone-2"))
    enc = ResponseEncoder()
    assert enc.encode(out, delta=False) == sotw(out)
    assert enc.encode(out, delta=True) == delta(out)
    parsed = discovery_pb2.DeltaDiscoveryResponse.FromString(enc.encode(out, delta=True))
    assert list(parsed.removed_resources) == ["gone-1", "", "gone-2"]


def test_a_large_resource_and_the_versioned_any() -> None:
    s = Serializer()
    big = s.versioned(R, "r-big", route("r-big", 3))
    # a 2-byte+ length prefix (the route's Any is small): make one past 16 KiB
    large = Versioned("x", "v", wire.any_wire(E.url, b"\x01" * 20_000))
    out = Outgoing(E, "12", "abc", (big, large), ())
    assert ResponseEncoder().encode(out, delta=False) == sotw(out)
    assert big.resource.type_url == R.url
    assert big.resource.value == route("r-big", 3).SerializeToString(deterministic=True)


def test_an_any_given_in_parts_is_the_any_of_their_join() -> None:
    parts = (b"\x0a\x05r-big", b"\x12" * 300, b"")
    expected = any_pb2.Any(type_url=R.url, value=b"".join(parts)).SerializeToString()
    assert wire.any_wire(R.url, *parts) == expected


def test_streams_sent_the_same_resources_share_one_encoding() -> None:
    enc = ResponseEncoder()
    same = clusters(50)
    # two streams: their own nonces and versions, the same resources
    a = Outgoing(C, "1", "version-a", same, ())
    b = Outgoing(C, "9", "version-b", tuple(same), ())
    assert enc.block(a, False)[0] is enc.block(b, False)[0]
    assert (enc.joined, enc.shared) == (1, 1)
    assert enc.encode(b, False) == sotw(b)
    # delta's resources are encoded another way: not shared with SotW's
    assert enc.block(a, True)[0] is not enc.block(a, False)[0]


def test_a_stream_sent_other_content_gets_its_own_encoding() -> None:
    enc = ResponseEncoder()
    a = Outgoing(C, "1", "v", clusters(50), ())
    changed = Outgoing(C, "1", "v", clusters(50, rev=2), ())  # same names, new versions
    fewer = Outgoing(C, "1", "v", clusters(49), ())
    blocks = {id(enc.block(o, False)[0]) for o in (a, changed, fewer)}
    assert len(blocks) == 3 and enc.shared == 0
    assert enc.encode(changed, False) == sotw(changed) != sotw(a)


def test_a_single_endpoint_set_is_joined_from_its_one_encoding() -> None:
    """Below ``SHARE_FROM`` resources nothing is cached; each resource's bytes are the one
    encoding the serializer made (every stream's response embeds that very object)."""
    s = Serializer()
    one = s.versioned(E, "c0", cla("c0", 2))
    assert s.versioned(E, "c0", cla("c0", 2)).wire == one.wire
    enc = ResponseEncoder()
    for nonce in ("1", "2", "3"):
        out = Outgoing(E, nonce, f"v{nonce}", (one,), ())
        assert one.wire in enc.encode(out, False)
        assert enc.encode(out, False) == sotw(out)
    assert enc.shared == 0 and len(enc._blocks) == 0
    # (and not copied before the response's one join: a gateway's table is 4.6 MB)
    for delta in (False, True):
        pieces = enc.block(Outgoing(E, "4", "v4", (one,), ()), delta)
        assert any(piece is one.wire for piece in pieces)


def test_the_cache_of_blocks_is_bounded() -> None:
    enc = ResponseEncoder(kept=3)
    for rev in range(10):
        enc.block(Outgoing(C, "1", "v", clusters(wire.SHARE_FROM, rev=rev + 1), ()), False)
    assert len(enc._blocks) == 3
