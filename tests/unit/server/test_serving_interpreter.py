"""A serving control plane's process-wide interpreter settings, and their undoing.

Translation runs in a worker thread; the event loop gets the GIL back within the switch
interval, and a collection of the oldest GC generation holds the GIL for as long as it
walks the heap: both bound the loop's stalls (docs/benchmarks.md, event-loop lag).
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

from gossamer.server.app import SWITCH_INTERVAL, serving_interpreter
from gossamer.testing.controlplane import running_control_plane


class _Loaded:
    """An object alive before the plane starts serving (as its loaded model is)."""


@pytest.mark.asyncio
async def test_serving_sets_the_switch_interval_and_freezes_what_was_loaded(
    tmp_path: Path,
) -> None:
    switch = sys.getswitchinterval()
    assert switch != SWITCH_INTERVAL  # (CPython's default, 5 ms)
    loaded_before = _Loaded()
    async with running_control_plane(tmp_path / "cp") as app:
        assert app.plane.model is not None
        assert sys.getswitchinterval() == SWITCH_INTERVAL
        assert gc.get_freeze_count() > 0
        assert gc.is_tracked(loaded_before)
        assert not any(o is loaded_before for o in gc.get_objects())  # frozen: not collected
    assert sys.getswitchinterval() == switch
    assert gc.get_freeze_count() == 0


def test_planes_stopped_in_any_order_leave_the_interpreter_as_it_was() -> None:
    # two planes in one process (the replica tests), the first stopped first: the second
    # one's exit put back the 1 ms the first had set, for every later test of the worker
    switch = sys.getswitchinterval()
    first, second = serving_interpreter(), serving_interpreter()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert sys.getswitchinterval() == SWITCH_INTERVAL  # the second still serves
    assert gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == switch
    assert gc.get_freeze_count() == 0
