"""Resources serialised once and versioned by a hash of their bytes (``Versioned``).

The ``Serializer`` keeps each encoding while the message it was made from is in use, so a
proto object reused across snapshots (the translator memoises them) is encoded once; a
mapping of them given whole (the clusters every gateway routing to the same services
shares) is versioned once for all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Generic, TypeVar

from google.protobuf import any_pb2, message

from gossamer.xds.resources import ResourceType
from gossamer.xds.wire import any_wire


@dataclass(frozen=True, slots=True)
class Versioned:
    name: str
    version: str
    #: the resource as an encoded ``google.protobuf.Any``: encoded once, joined as is into
    #: every response carrying it (``gossamer.xds.wire``)
    wire: bytes
    #: its line in the text ``content_version`` hashes, made once (every patched
    #: snapshot's digest joins its type's lines again)
    line: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "line", f"{self.name}\0{self.version}\n".encode())

    @property
    def resource(self) -> any_pb2.Any:
        """The resource as a ``google.protobuf.Any`` (decoded on each call)."""
        return any_pb2.Any.FromString(self.wire)


def content_version(items: Iterable[tuple[str, str]]) -> str:
    """The version of a set of (name, version) pairs, independent of order."""
    # (one buffer hashed at once: the same bytes as a hash update per field, faster)
    text = "".join(f"{name}\0{version}\n" for name, version in sorted(items))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


T = TypeVar("T")


class PairMemo(Generic[T]):
    """What a function of two objects (never changed) gave, known by both objects'
    identities and kept with them, so an id is not reused while its entry lives; the last
    ``kept`` pairs."""

    def __init__(self, kept: int) -> None:
        self._kept = kept
        self._memo: dict[tuple[int, int], tuple[object, object, T]] = {}

    def get(self, a: object, b: object, compute: Callable[[], T]) -> T:
        key = (id(a), id(b))
        hit = self._memo.get(key)
        if hit is not None and hit[0] is a and hit[1] is b:
            return hit[2]
        out = compute()
        self._memo.pop(key, None)
        self._memo[key] = (a, b, out)
        while len(self._memo) > self._kept:
            del self._memo[next(iter(self._memo))]
        return out


#: how one versioned mapping differs from another: the names added or given a new
#: version, those removed, and the new mapping's digest (None: they hold the same)
Comparison = tuple[tuple[str, ...], frozenset[str], str | None]


class Serializer:
    """Serialises protos once: a proto object reused across snapshots is not re-encoded."""

    def __init__(self) -> None:
        #: key -> (the object the key names, kept so its id is not reused; the result)
        self._cache: dict[Hashable, tuple[object, Versioned]] = {}
        self._used: set[Hashable] = set()
        #: id of each cached ``Versioned`` -> its key in ``_cache``
        self._keys: dict[int, Hashable] = {}
        #: ids of the mappings ``versioned_all`` gave again since the last prune
        self._mappings_used: set[int] = set()
        #: the last ``MAPPINGS_KEPT`` mappings versioned whole: id -> (it, the result)
        self._mappings: dict[
            int, tuple[Mapping[str, message.Message], Mapping[str, Versioned]]
        ] = {}
        #: large versioned mappings compared (``Snapshot.build``): gateways sharing their
        #: 10,000 clusters before and after a change compare the same two mappings
        self.compared: PairMemo[Comparison] = PairMemo(MAPPINGS_KEPT)

    def versioned(
        self,
        rtype: ResourceType,
        name: str,
        msg: message.Message,
        encoded: tuple[bytes, ...] = (),
    ) -> Versioned:
        """``msg`` serialised and versioned; ``encoded``: its deterministic encoding in
        parts, where whoever made it has it (``Encoded``). Known by the message, or by its
        type, name and the last of its parts (a table gateways share: the message need not be
        kept, 15 MB decoded for 10,000 hosts)."""
        guard: object = encoded[-1] if encoded else msg
        key: Hashable = (rtype, name, id(guard)) if encoded else id(msg)
        self._used.add(key)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is guard:
            return hit[1]
        if hit is not None:
            self._keys.pop(id(hit[1]), None)
        parts = encoded or (msg.SerializeToString(deterministic=True),)
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        out = Versioned(name, digest.hexdigest()[:16], any_wire(rtype.url, *parts))
        self._cache[key] = (guard, out)
        self._keys[id(out)] = key
        return out

    def versioned_all(
        self, rtype: ResourceType, mapping: Mapping[str, message.Message]
    ) -> Mapping[str, Versioned]:
        """Every resource of ``mapping`` versioned: once for all the snapshots given the
        same mapping object, which must never change (a gateway's 10,000 clusters, shared
        by every gateway routing to the same services: ~10 ms a gateway otherwise)."""
        key = id(mapping)
        hit = self._mappings.get(key)
        if hit is not None and hit[0] is mapping:
            self._mappings_used.add(key)  # (the next prune keeps what it holds)
            return hit[1]
        out = MappingProxyType({n: self.versioned(rtype, n, m) for n, m in mapping.items()})
        self._mappings.pop(key, None)
        self._mappings[key] = (mapping, out)
        while len(self._mappings) > MAPPINGS_KEPT:
            del self._mappings[next(iter(self._mappings))]
        return out

    def __len__(self) -> int:
        return len(self._cache)

    def prune(self) -> None:
        for used in self._mappings_used:
            hit = self._mappings.get(used)
            if hit is not None:
                self._used.update(map(id, hit[0].values()))
        self._mappings_used = set()
        for key in self._cache.keys() - self._used:
            self._keys.pop(id(self._cache.pop(key)[1]), None)
        self._used = set()

    def forget(self, replaced: Iterable[Versioned]) -> None:
        """Drop the messages behind ``replaced`` now rather than at the next prune (their
        proxies hold newer versions; one still holding them only costs an encoding)."""
        for out in replaced:
            key = self._keys.pop(id(out), None)
            if key is not None:
                self._cache.pop(key, None)
                self._used.discard(key)


#: mappings ``Serializer.versioned_all`` keeps (each keeps its messages alive: an endpoint
#: change makes a gateway's sets anew, so a few are kept, not one per change)
MAPPINGS_KEPT = 4
