"""A control plane stops when told to, whatever it was doing.

Python 3.11's ``asyncio.wait_for`` swallows a cancellation that arrives just as the awaited
thing completes (fixed in 3.12, gh-86296): the plane's publisher, waiting out a debounce
with it, went on waiting on its next change after the cancel, so shutdown hung for ever
(seen: a failing test inside ``memory_control_plane`` after a worker-thread call ran into
pytest's 300 s timeout). ``asyncio.timeout`` has no such race.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import gossamer

SCENARIO = textwrap.dedent(
    """
    import asyncio
    from gossamer.model import parse_manifest
    from gossamer.testing.controlplane import memory_control_plane

    SERVICE = {
        "apiVersion": "gossamer.dev/v1", "kind": "Service", "metadata": {"name": "a"},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    }

    async def main() -> None:
        try:
            async with memory_control_plane() as plane:
                await asyncio.to_thread(lambda: None)
                await plane.apply([parse_manifest(SERVICE)])
                raise KeyError("the body failed")
        except KeyError:
            print("stopped")

    asyncio.run(main())
    """
)


def test_a_failure_inside_a_running_plane_stops_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"


def test_no_asyncio_wait_for_in_the_package() -> None:
    """Use ``async with asyncio.timeout(...)`` instead (see the module docstring)."""
    root = Path(gossamer.__file__).parent
    found = [
        f"{path.relative_to(root)}:{node.lineno}"
        for path in root.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and node.attr == "wait_for"
        and isinstance(node.value, ast.Name)
        and node.value.id == "asyncio"
    ]
    assert not found, f"asyncio.wait_for at {found}"
