from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from gossamer.envoy.process import ManagedProcess, pid_alive
from gossamer.errors import ProcessError
from gossamer.polling import wait_until

pytestmark = pytest.mark.integration

# Ignores SIGTERM, says so, then waits for stdin-less eternity.
_STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(3600)\n"
)


@pytest.mark.asyncio
async def test_stop_escalates_to_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    process = ManagedProcess(
        [sys.executable, "-c", _STUBBORN], log_path=tmp_path / "log", name="stubborn"
    )
    await process.start()
    await wait_until(lambda: "ready" in process.log_tail(), timeout=30, what="stubborn ready")
    assert process.running
    assert await process.stop(grace=0.2) == -signal.SIGKILL
    assert not pid_alive(process.pid)


@pytest.mark.asyncio
async def test_stop_returns_the_exit_status_of_a_cooperative_process(tmp_path: Path) -> None:
    process = ManagedProcess(["sleep", "3600"], log_path=tmp_path / "log", name="sleep")
    await process.start()
    assert await process.stop() == -signal.SIGTERM
    assert process.returncode == -signal.SIGTERM


@pytest.mark.asyncio
async def test_output_goes_to_the_log(tmp_path: Path) -> None:
    script = "import sys\nfor i in range(100): print(i)\nprint('oops', file=sys.stderr)"
    process = ManagedProcess(
        [sys.executable, "-c", script], log_path=tmp_path / "log", name="printer"
    )
    await process.start()
    assert await process.wait(30) == 0
    assert process.log_tail(3).splitlines() == ["98", "99", "oops"]


@pytest.mark.asyncio
async def test_a_missing_program_raises_process_error(tmp_path: Path) -> None:
    process = ManagedProcess([str(tmp_path / "nope")], log_path=tmp_path / "log", name="nope")
    with pytest.raises(ProcessError, match="cannot start nope"):
        await process.start()
