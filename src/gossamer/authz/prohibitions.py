"""Prohibitions: denials that override associations.

A prohibition names a subject (a user, a user attribute, or a process, optionally with its
user), the rights it denies, and containers, each either an inclusion container (satisfied
when the target is the container or inside it) or an exclusion container (satisfied when
the target is *outside* it: the complement). A conjunctive prohibition needs every
container condition; a disjunctive one needs any. A prohibition without containers is
never satisfied. This follows ``AccessRightResolver.isProhibitionSatisfied`` of
usnistgov/policy-machine-core at commit 0ae045e5532b4960c9c78187dd17c9e21f90f8d8.
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Prohibition:
    name: str
    #: denied rights as a bitset (see :class:`gossamer.authz.rights.Rights`)
    rights: int
    #: (node id, complement) pairs; complement=True is an exclusion container
    containers: tuple[tuple[int, bool], ...]
    conjunctive: bool
    #: the user or user attribute denied, or None for a process prohibition
    subject: int | None = None
    #: the process denied (a process prohibition)
    process: str | None = None
    #: the user the process runs as (recorded, as in the reference; not used to decide)
    process_user: int | None = None


def satisfied(p: Prohibition, reached: Container[int]) -> bool:
    """Whether ``p`` applies to a target whose own node and descendants are ``reached``."""
    if not p.containers:
        return False
    if p.conjunctive:
        return all((node in reached) != complement for node, complement in p.containers)
    return any((node in reached) != complement for node, complement in p.containers)


class ProhibitionIndex:
    """Prohibitions by name, by subject node and by process.

    The tuples returned by :meth:`for_subject` and :meth:`for_process` are replaced (never
    mutated) on change, so a cache may keep one and check it by identity.
    """

    _EMPTY: tuple[Prohibition, ...] = ()

    def __init__(self) -> None:
        self._by_name: dict[str, Prohibition] = {}
        self._by_subject: dict[int, tuple[Prohibition, ...]] = {}
        self._by_process: dict[str, tuple[Prohibition, ...]] = {}

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> Prohibition | None:
        return self._by_name.get(name)

    def all(self) -> Iterator[Prohibition]:
        return iter(list(self._by_name.values()))

    def for_subject(self, node: int) -> tuple[Prohibition, ...]:
        return self._by_subject.get(node, self._EMPTY)

    def for_process(self, process: str) -> tuple[Prohibition, ...]:
        return self._by_process.get(process, self._EMPTY)

    def subjects(self) -> Iterator[int]:
        return iter(list(self._by_subject))

    def referencing(self, node: int) -> list[str]:
        """Names of prohibitions whose subject, user or containers include ``node``."""
        return [
            p.name
            for p in self._by_name.values()
            if node in (p.subject, p.process_user) or any(c == node for c, _ in p.containers)
        ]

    def add(self, p: Prohibition) -> None:
        self._by_name[p.name] = p
        if p.subject is not None:
            self._by_subject[p.subject] = (*self.for_subject(p.subject), p)
        if p.process is not None:
            self._by_process[p.process] = (*self.for_process(p.process), p)

    def remove(self, name: str) -> Prohibition:
        p = self._by_name.pop(name)
        if p.subject is not None:
            rest = tuple(x for x in self._by_subject[p.subject] if x.name != name)
            if rest:
                self._by_subject[p.subject] = rest
            else:
                del self._by_subject[p.subject]
        if p.process is not None:
            rest = tuple(x for x in self._by_process[p.process] if x.name != name)
            if rest:
                self._by_process[p.process] = rest
            else:
                del self._by_process[p.process]
        return p
