"""The README's first command: `gossamer demo --duration N` exits 0 with traffic served."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_runs_and_succeeds() -> None:
    gossamer = Path(sys.executable).with_name("gossamer")
    done = subprocess.run(
        [str(gossamer), "demo", "--duration", "8"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "requests succeeded" in done.stdout
    assert " 0 of " not in done.stdout
