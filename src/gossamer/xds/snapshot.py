"""An immutable, versioned set of resources for one proxy: the unit of change.

Each resource is serialised once (deterministically) and versioned by a hash of its bytes,
so a restarted control plane computes the same versions and Envoy rebuilds nothing. A
snapshot is built from plain protobufs per resource type; what produced them (the
control plane's translator, a future SDS or telemetry server) is no concern of ``xds``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from google.protobuf import any_pb2, message

from gossamer.xds.resources import ResourceType


@dataclass(frozen=True, slots=True)
class Versioned:
    name: str
    version: str
    resource: any_pb2.Any


def content_version(items: Iterable[tuple[str, str]]) -> str:
    """The version of a set of (name, version) pairs, independent of order."""
    h = hashlib.sha256()
    for name, version in sorted(items):
        h.update(name.encode())
        h.update(b"\0")
        h.update(version.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


class Serializer:
    """Serialises protos once: a proto object reused across snapshots is not re-encoded."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[message.Message, Versioned]] = {}
        self._used: set[int] = set()

    def versioned(self, rtype: ResourceType, name: str, msg: message.Message) -> Versioned:
        key = id(msg)
        self._used.add(key)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is msg:
            return hit[1]
        data = msg.SerializeToString(deterministic=True)
        any_msg = any_pb2.Any(type_url=rtype.url, value=data)
        out = Versioned(name, hashlib.sha256(data).hexdigest()[:16], any_msg)
        self._cache[key] = (msg, out)
        return out

    def prune(self) -> None:
        for key in self._cache.keys() - self._used:
            del self._cache[key]
        self._used = set()


@dataclass(frozen=True)
class Snapshot:
    resources: Mapping[ResourceType, Mapping[str, Versioned]] = field(
        default_factory=lambda: MappingProxyType({t: MappingProxyType({}) for t in ResourceType})
    )
    #: monotonic time the change that produced it was seen (for push-latency metrics)
    created: float = field(default=0.0, compare=False)

    @classmethod
    def build(
        cls,
        resources: Mapping[ResourceType, Mapping[str, message.Message]],
        serializer: Serializer,
        created: float = 0.0,
    ) -> Snapshot:
        """A snapshot of ``resources`` (type -> name -> protobuf); absent types are empty."""
        return cls(
            MappingProxyType(
                {
                    t: MappingProxyType(
                        {n: serializer.versioned(t, n, m) for n, m in resources.get(t, {}).items()}
                    )
                    for t in ResourceType
                }
            ),
            created,
        )

    def with_resources(
        self, rtype: ResourceType, updates: Mapping[str, Versioned], created: float
    ) -> Snapshot:
        """This snapshot with some resources of one type replaced (or added)."""
        resources = dict(self.resources)
        resources[rtype] = MappingProxyType({**self.resources[rtype], **updates})
        return Snapshot(MappingProxyType(resources), created)

    def of(self, rtype: ResourceType) -> Mapping[str, Versioned]:
        return self.resources[rtype]

    def version(self, rtype: ResourceType) -> str:
        return content_version((n, v.version) for n, v in self.of(rtype).items())
