"""``Layered``: a dict made from a shared mapping that knows which names were written since.

A gateway at 10k services takes 10,000 shared clusters and endpoint sets whole and adds a
few of its own (a telemetry or rate-limit cluster, an egress one). Whoever versions or
checks the shared mapping once for every proxy built on it then needs only the names this
proxy wrote, not a walk over 10,000 names per proxy to find them (``xds.snapshot``,
``translate.proxy.ProxyResources``). Every way a dict can change is recorded here, so the
record cannot miss a write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class Layered(dict[K, V]):
    """A copy of ``base`` (never changed through this object) and the names written to the
    copy since (set, replaced or deleted: ``written``)."""

    __slots__ = ("base", "written")

    def __init__(self, base: Mapping[K, V]) -> None:
        super().__init__(base)
        self.base = base
        #: the names set, replaced or deleted since the copy, in the order first written
        self.written: dict[K, None] = {}

    # -- every mutation is recorded ------------------------------------------------------

    def __setitem__(self, key: K, value: V) -> None:
        self.written[key] = None
        super().__setitem__(key, value)

    def __delitem__(self, key: K) -> None:
        super().__delitem__(key)
        self.written[key] = None

    def update(self, *args: Any, **kwargs: V) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> Layered[K, V]:  # type: ignore[override,misc]
        self.update(other)
        return self

    def setdefault(self, key: K, default: V = None) -> V:  # type: ignore[assignment]
        if key not in self:
            self[key] = default
        return self[key]

    @overload
    def pop(self, key: K, /) -> V: ...

    @overload
    def pop(self, key: K, default: V, /) -> V: ...

    @overload
    def pop(self, key: K, default: T, /) -> V | T: ...

    def pop(self, key: K, *default: Any) -> Any:
        if key in self:
            self.written[key] = None
        return super().pop(key, *default)

    def popitem(self) -> tuple[K, V]:
        key, value = super().popitem()
        self.written[key] = None
        return key, value

    def clear(self) -> None:
        self.written.update(dict.fromkeys(self))
        super().clear()

    def __reduce__(self) -> Any:  # (copied or pickled: a plain dict, base forgotten)
        return (dict, (dict(self),))


def holds(mapping: Mapping[K, Any], base: Mapping[K, Any]) -> bool:
    """Every name of ``base`` is in ``mapping`` (bound to anything); for a ``Layered`` copy
    of that very ``base``, read from its record of writes."""
    if isinstance(mapping, Layered) and mapping.base is base:
        return all(n in mapping for n in mapping.written if n in base)
    return base.keys() <= mapping.keys()


def differing(mapping: Mapping[K, V], base: Mapping[K, Any]) -> dict[K, V]:
    """What ``mapping`` holds that ``base`` does not: names ``base`` lacks, or binds to
    another object. For a ``Layered`` copy of that very ``base``, only the names written
    to it are looked at."""
    if isinstance(mapping, Layered) and mapping.base is base:
        return {
            n: v for n in mapping.written if n in mapping and (v := mapping[n]) is not base.get(n)
        }
    return {n: v for n, v in mapping.items() if base.get(n) is not v}
