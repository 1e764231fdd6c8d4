"""An immutable, versioned set of resources for one proxy: the unit of change.

Each resource is serialised once (deterministically) and versioned by a hash of its bytes,
so a restarted control plane computes the same versions and Envoy rebuilds nothing. A
snapshot is built from plain protobufs per resource type; what produced them (the
control plane's translator, a future SDS or telemetry server) is no concern of ``xds``.

A snapshot also carries, per type, the content version of all its resources (its *digest*)
and what changed since the snapshot it was derived from (a ``TypeDiff``). Both are
computed once, where the snapshot is built (a worker thread, for the control plane), so
that each stream's protocol state can tell in O(1) that a proxy holds a type exactly and
find a changed type's changed names without walking every resource on the event loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType

from google.protobuf import message

from gossamer.layered import differing, holds
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Comparison, PairMemo, Serializer, Versioned


@dataclass(frozen=True, slots=True)
class TypeDiff:
    """How one type's resources differ from those of the snapshot this one came from."""

    #: the digest of the type in that snapshot
    since: str
    #: names added or given a new version, in this snapshot's order
    changed: tuple[str, ...]
    #: names that snapshot had and this one has not
    removed: frozenset[str]


_Resources = Mapping[ResourceType, Mapping[str, Versioned]]


@dataclass(frozen=True, slots=True)
class Encoded:
    """A resource with its deterministic encoding in parts (``b"".join(parts)`` is
    ``resource.SerializeToString(deterministic=True)``): copies of one large resource
    under different names share every part but the name's, encoded once."""

    resource: message.Message
    parts: tuple[bytes, ...]


def _empty_resources() -> _Resources:
    return MappingProxyType({t: MappingProxyType({}) for t in ResourceType})


def _no_diffs() -> Mapping[ResourceType, TypeDiff]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Snapshot:
    resources: _Resources = field(default_factory=_empty_resources)
    #: monotonic time the change that produced it was seen (for push-latency metrics)
    created: float = field(default=0.0, compare=False)
    #: per type, the content version of all its resources (None: not computed, as for a
    #: snapshot made directly from ``resources``; the protocol state then walks them)
    digests: Mapping[ResourceType, str] | None = field(default=None, compare=False)
    #: per type that changed, how it differs from the snapshot this one was derived from
    diffs: Mapping[ResourceType, TypeDiff] = field(default_factory=_no_diffs, compare=False)

    @classmethod
    def build(
        cls,
        resources: Mapping[ResourceType, Mapping[str, message.Message]],
        serializer: Serializer,
        created: float = 0.0,
        previous: Snapshot | None = None,
        encoded: Mapping[ResourceType, Mapping[str, Encoded]] | None = None,
        bases: Mapping[ResourceType, Mapping[str, message.Message]] | None = None,
    ) -> Snapshot:
        """A snapshot of ``resources`` (type -> name -> protobuf); absent types are empty.
        ``previous``: the snapshot this one replaces, to diff against (and to reuse the
        digests of types that did not change). ``encoded``: resources whose encoding is
        known (used while the resource is still the one encoded). ``bases``: per type, a
        mapping (never changed) whose every resource ``resources`` holds: versioned once
        for all the snapshots given it (``Serializer.versioned_all``)."""
        built: dict[ResourceType, Mapping[str, Versioned]] = {}
        for t in ResourceType:
            of_type = resources.get(t, {})
            base = bases.get(t) if bases else None
            known = encoded.get(t) if encoded else None
            if base is not None and holds(of_type, base):
                built[t] = _on_base(t, of_type, base, serializer)
            elif known:
                built[t] = MappingProxyType(
                    {
                        n: serializer.versioned(
                            t, n, m, e.parts if (e := known.get(n)) and e.resource is m else ()
                        )
                        for n, m in of_type.items()
                    }
                )
            else:
                built[t] = MappingProxyType(
                    {n: serializer.versioned(t, n, m) for n, m in of_type.items()}
                )
        return cls._indexed(built, created, previous, serializer.compared)

    @classmethod
    def _indexed(
        cls,
        resources: Mapping[ResourceType, Mapping[str, Versioned]],
        created: float,
        previous: Snapshot | None,
        compared: PairMemo[Comparison] | None = None,
    ) -> Snapshot:
        """A snapshot of ``resources`` with its digests and its diffs from ``previous``;
        ``compared`` keeps the comparisons of large types (gateways sharing their mappings
        before and after a change compare them once)."""
        digests: dict[ResourceType, str] = {}
        diffs: dict[ResourceType, TypeDiff] = {}
        before = previous.digests if previous is not None else None
        for t, mapping in resources.items():
            if before is None:
                digests[t] = _digest(mapping)
                continue
            assert previous is not None
            old = previous.resources[t]
            if old is mapping:
                digests[t] = before[t]
                continue
            if compared is not None and len(mapping) >= ORDERED_FROM:
                compare = partial(_compare, old, mapping)
                changed, removed, digest = compared.get(old, mapping, compare)
            else:
                changed, removed, digest = _compare(old, mapping)
            if digest is None:
                digests[t] = before[t]
                continue
            digests[t] = digest
            diffs[t] = TypeDiff(before[t], changed, removed)
        return cls(
            MappingProxyType(dict(resources)),
            created,
            MappingProxyType(digests),
            MappingProxyType(diffs),
        )

    def with_resources(
        self, rtype: ResourceType, updates: Mapping[str, Versioned], created: float
    ) -> Snapshot:
        """This snapshot with some resources of one type replaced (or added), diffed
        against this one: at the cost of ``updates`` and of the type's digest, never a walk
        over the other types or over the type for what changed. The diff names the changed
        resources in the order of ``updates``."""
        return self.with_patch(self.patch_type(rtype, updates), created)

    def patch_type(self, rtype: ResourceType, updates: Mapping[str, Versioned]) -> TypePatch:
        """What ``with_resources`` makes of ``rtype``: the same for every snapshot holding
        this very mapping of it (gateways sharing their 10,000 endpoint sets patch them
        once, ``with_patch``)."""
        held = self.resources[rtype]
        mapping = MappingProxyType({**held, **updates})
        if self.digests is None:
            return TypePatch(rtype, held, mapping, None, None, None)
        changed = tuple(
            n
            for n, v in updates.items()
            if (o := held.get(n)) is not v and (o is None or o.version != v.version)
        )
        if not changed:
            return TypePatch(rtype, held, mapping, self.digests[rtype], None, None)
        lines = None
        if len(mapping) < ORDERED_FROM:
            digest = _digest(mapping)
        else:
            digest, lines = self._lines_after(rtype, mapping, changed)
        diff = TypeDiff(self.digests[rtype], changed, frozenset())
        return TypePatch(rtype, held, mapping, digest, diff, lines)

    def with_patch(self, patch: TypePatch, created: float) -> Snapshot:
        """This snapshot with ``patch`` (made by ``patch_type`` on a snapshot holding the
        same mapping of its type) applied."""
        rtype = patch.type
        if self.resources[rtype] is not patch.held:
            raise ValueError(f"a patch of {rtype.short} applied to a snapshot it was not made on")
        resources = MappingProxyType({**self.resources, rtype: patch.mapping})
        if self.digests is None or patch.digest is None:
            return Snapshot(resources, created)
        if patch.diff is None:
            return Snapshot(resources, created, self.digests)
        digests = MappingProxyType({**self.digests, rtype: patch.digest})
        out = Snapshot(resources, created, digests, MappingProxyType({rtype: patch.diff}))
        if patch.lines is not None:
            out.__dict__[_LINES] = {rtype: patch.lines}
        return out

    def _lines_after(
        self, rtype: ResourceType, mapping: Mapping[str, Versioned], changed: tuple[str, ...]
    ) -> tuple[str, _Lines]:
        """The digest of ``mapping`` (this snapshot's ``rtype`` with ``changed`` replaced)
        and its lines in order: this snapshot's lines with the changed ones put in their
        places, when it kept them and no name is new; else sorted afresh."""
        mine: _Lines | None = self.__dict__.get(_LINES, {}).get(rtype)
        if mine is not None and all(n in mine.order.at for n in changed):
            lines = _Lines(mine.order, mine.lines.copy())
            at = mine.order.at
            for n in changed:
                lines.lines[at[n]] = mapping[n].line
        else:
            names = tuple(sorted(mapping))
            order = _Order(names, {n: i for i, n in enumerate(names)})
            lines = _Lines(order, [mapping[n].line for n in names])
        return hashlib.sha256(b"".join(lines.lines)).hexdigest()[:16], lines

    def of(self, rtype: ResourceType) -> Mapping[str, Versioned]:
        return self.resources[rtype]

    def same_content(self, other: Snapshot) -> bool:
        """Do both hold the same resources? Their digests tell in O(types) (a digest
        hashes every name with its content's hash); without digests, every resource is
        compared."""
        if self.digests is not None and other.digests is not None:
            return self.digests == other.digests
        return self.resources == other.resources

    def version(self, rtype: ResourceType) -> str:
        """The content version of every resource of ``rtype`` (its digest)."""
        if self.digests is not None:
            return self.digests[rtype]
        return _digest(self.of(rtype))


@dataclass(frozen=True, slots=True)
class TypePatch:
    """One type of a snapshot with some resources replaced (``Snapshot.patch_type``)."""

    type: ResourceType
    #: the mapping it was made on
    held: Mapping[str, Versioned]
    mapping: Mapping[str, Versioned]
    #: the type's digest after (None: the snapshot keeps none)
    digest: str | None
    #: how it differs from ``held`` (None: it does not)
    diff: TypeDiff | None
    lines: _Lines | None


#: a type of at least this many resources keeps the lines of its digest in name order,
#: so the next patch hashes them again without sorting the names (``_digest``): a
#: gateway's 10,000 endpoint sets took 3.2 ms per patch, 1.8 ms so (hashing the rest)
ORDERED_FROM = 512
#: where a patched snapshot keeps them (per type; not a field: no part of its value)
_LINES = "_lines"


@dataclass(frozen=True, slots=True)
class _Order:
    """A type's names, sorted, and each one's place: shared by the snapshots patched
    from one another while no name is added."""

    names: tuple[str, ...]
    at: dict[str, int]


@dataclass(frozen=True, slots=True)
class _Lines:
    """The lines ``_digest`` hashes for one type of one snapshot, in ``order``."""

    order: _Order
    lines: list[bytes]


def _on_base(
    rtype: ResourceType,
    of_type: Mapping[str, message.Message],
    base: Mapping[str, message.Message],
    serializer: Serializer,
) -> Mapping[str, Versioned]:
    """``of_type`` versioned, where it holds every name of ``base``: the base's resources
    are versioned once for every snapshot on it, the others (and any name bound to another
    message than the base's) on their own. Just the base: its very mapping, shared. A
    ``Layered`` copy of ``base`` is not walked: only the names written to it are read."""
    shared = serializer.versioned_all(rtype, base)
    extra = differing(of_type, base)
    if not extra:
        return shared  # (every name of ``of_type`` is in ``base``, with the same message)
    return MappingProxyType(
        {**shared, **{n: serializer.versioned(rtype, n, m) for n, m in extra.items()}}
    )


def _compare(old: Mapping[str, Versioned], new: Mapping[str, Versioned]) -> Comparison:
    """How ``new`` differs from ``old`` (``Comparison``)."""
    changed = tuple(
        n
        for n, v in new.items()
        if (o := old.get(n)) is not v and (o is None or o.version != v.version)
    )
    removed = frozenset(old.keys() - new.keys())
    if not changed and not removed:
        return (), removed, None
    return changed, removed, _digest(new)


def _digest(resources: Mapping[str, Versioned]) -> str:
    """``content_version`` of the resources' (name, version) pairs, from their lines."""
    text = b"".join(resources[n].line for n in sorted(resources))
    return hashlib.sha256(text).hexdigest()[:16]
