"""Obligations and the event processor (NGAC's EPP).

An obligation says: when an event matching its pattern happens (who, which operation, on
what), run its response, a list of administrative commands, with the rights of its
author. Responses are themselves administrative changes: they are checked, transactional,
and produce events of their own, which may fire further obligations (bounded, so two
obligations cannot feed each other forever).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gossamer.authz.graph import Graph
from gossamer.errors import FieldError, GossamerError, ValidationError
from gossamer.model.access_commands import Command, Obligation, substitute

if TYPE_CHECKING:
    from gossamer.authz.pap import PAP

#: how many events one call to :meth:`EventProcessor.process` may handle in total
MAX_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class Event:
    user: str
    operation: str
    target: str
    args: tuple[tuple[str, str], ...] = ()

    def values(self) -> dict[str, str]:
        return {
            **dict(self.args),
            "user": self.user,
            "operation": self.operation,
            "target": self.target,
        }


@dataclass(frozen=True, slots=True)
class Firing:
    """One obligation run: what fired it, the commands it ran, or why it failed."""

    obligation: str
    event: Event
    commands: tuple[Command, ...] = ()
    error: str | None = None


class ObligationSet:
    """The obligations in force, changed only inside graph transactions."""

    def __init__(self, graph: Graph) -> None:
        self._graph = graph
        self._by_name: dict[str, Obligation] = {}

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[Obligation]:
        return iter(list(self._by_name.values()))

    def get(self, name: str) -> Obligation | None:
        return self._by_name.get(name)

    def add(self, obligation: Obligation) -> None:
        g = self._graph
        if obligation.name in self._by_name:
            raise ValidationError(
                [
                    FieldError(
                        f"obligation {obligation.name!r} already exists; delete it first", "name"
                    )
                ]
            )
        g.id(obligation.author, "author")
        for i, n in enumerate(obligation.event.users):
            g.id(n, f"event.users[{i}]")
        for i, n in enumerate(obligation.event.targets):
            g.id(n, f"event.targets[{i}]")
        self._by_name[obligation.name] = obligation

        def undo() -> None:
            self._by_name.pop(obligation.name, None)

        g.on_undo(undo)

    def remove(self, name: str) -> None:
        old = self._by_name.pop(name, None)
        if old is None:
            raise ValidationError([FieldError(f"obligation {name!r} does not exist", "name")])
        self._graph.on_undo(lambda: self._by_name.__setitem__(name, old))

    def matching(self, event: Event) -> list[Obligation]:
        g = self._graph
        out: list[Obligation] = []
        user = g.find(event.user)
        target = g.find(event.target)
        for o in self._by_name.values():
            pat = o.event
            if pat.operations and event.operation not in pat.operations:
                continue
            if pat.users and not (
                user is not None
                and any((n := g.find(u)) is not None and g.reaches(user, n) for u in pat.users)
            ):
                continue
            if pat.targets and not (
                target is not None
                and any((n := g.find(t)) is not None and g.reaches(target, n) for t in pat.targets)
            ):
                continue
            out.append(o)
        return out


@dataclass
class EventProcessor:
    """Runs the responses of the obligations that events match, through the PAP."""

    pap: PAP
    history: deque[Firing] = field(default_factory=lambda: deque(maxlen=1000))

    def process(self, events: list[Event]) -> list[Firing]:
        queue = deque(events)
        fired: list[Firing] = []
        handled = 0
        while queue and handled < MAX_EVENTS:
            event = queue.popleft()
            handled += 1
            for o in self.pap.obligations.matching(event):
                try:
                    cmds = [substitute(c, event.values()) for c in o.response]
                    new_events = self.pap.execute(
                        o.author, cmds, cause=f"obligation:{o.name}", fire=False
                    )
                except GossamerError as e:
                    firing = Firing(o.name, event, error=str(e))
                except Exception as e:  # pydantic errors from substitution
                    firing = Firing(o.name, event, error=f"bad response: {e}")
                else:
                    firing = Firing(o.name, event, tuple(cmds))
                    queue.extend(new_events)
                fired.append(firing)
                self.history.append(firing)
        if queue:
            stop = Firing(
                "",
                queue[0],
                error=f"stopped after {MAX_EVENTS} events: obligations keep triggering each other",
            )
            fired.append(stop)
            self.history.append(stop)
        return fired
