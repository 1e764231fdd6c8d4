"""A safety net for tests that start detached processes (the agent's sidecars outlive it by
design): kill every Envoy still running from under a directory."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def kill_envoys_under(directory: Path) -> list[int]:
    """SIGKILL every ``envoy`` process whose working directory or config lies under
    ``directory``; return their pids (empty when the test cleaned up after itself)."""
    root = str(directory.resolve())
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if not argv or not argv[0].endswith(b"envoy"):
                continue
            cwd = os.readlink(entry / "cwd").removesuffix(" (deleted)")
        except OSError:
            continue
        if cwd.startswith(root) or any(root.encode() in a for a in argv):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed
