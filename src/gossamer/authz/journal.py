"""Change listeners and transactions with undo, for the graph (and state kept beside it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from gossamer.authz.changes import GraphChange, GraphListener


class Journaled:
    """Publishes every primitive change to listeners; records inverses inside transactions."""

    def __init__(self) -> None:
        self._listeners: list[GraphListener] = []
        self._undo: list[Callable[[], None]] | None = None

    def subscribe(self, listener: GraphListener) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: GraphListener) -> None:
        """Stop telling ``listener`` (nothing if it was not told, e.g. after
        :meth:`clear_listeners`)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def clear_listeners(self) -> None:
        """Forget every listener (this graph was replaced: they hold it, it holds them)."""
        self._listeners.clear()

    def _emit(self, change: GraphChange) -> None:
        for listener in self._listeners:
            listener.graph_changed(change)

    def _record(self, undo: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append(undo)

    def on_undo(self, undo: Callable[[], None]) -> None:
        """Run ``undo`` if the enclosing transaction fails (for state kept beside the graph,
        such as obligations)."""
        self._record(undo)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All changes in the block happen, or none (an exception undoes them, then
        propagates). A nested block is a savepoint: its failure undoes only its own
        changes; the outer block's failure undoes everything."""
        outer = self._undo is None
        if outer:
            self._undo = []
        undo = self._undo
        assert undo is not None
        mark = len(undo)
        try:
            yield
        except BaseException:
            while len(undo) > mark:
                undo.pop()()
            if outer:
                self._undo = None
            raise
        if outer:
            self._undo = None
