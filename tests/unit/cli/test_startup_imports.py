"""``gossamer`` starts without what only some commands need: the web framework, the
services' servers, the store and etcd client, the agent's runner (each ``gossamer`` process
paid ~1 s of CPU for them; docs/benchmarks.md, "CLI start-up")."""

from __future__ import annotations

import subprocess
import sys

#: modules only the commands that run them may load
LATE = (
    "fastapi",
    "gossamer.telemetry.serve",
    "gossamer.ratelimit.serve",
    "gossamer.decisionpoint.serve",
    "gossamer.store.factory",
    "aetcd",
    "gossamer.agent.runner",
)


def test_the_command_line_loads_none_of_the_heavy_modules() -> None:
    probe = (
        "import sys; import gossamer.cli.main; "
        f"print(' '.join(m for m in {LATE!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert loaded == []
