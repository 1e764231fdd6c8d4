"""Run a bench script end to end the way its tests do: its output, or its exit code."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


async def run_bench(script: str, *args: str, within: float) -> tuple[int, str]:
    """``bench/<script> args`` until it exits (within ``within`` seconds); one that overran
    gets SIGINT first (a bench stops its servers and Envoys on the way out), then SIGKILL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / script), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    out_b = b""
    try:
        async with asyncio.timeout(within):
            out_b, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(30):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out_b.decode()
