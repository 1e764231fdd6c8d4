"""The ``gossamer gateway`` process: a runner until SIGTERM or SIGINT, then a drain."""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
from dataclasses import replace
from pathlib import Path

from gossamer.gateway.runner import GatewayRunner
from gossamer.gateway.settings import GatewaySettings


async def serve(runner: GatewayRunner) -> None:
    """Run until SIGTERM or SIGINT (Ctrl-C), then drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(settings: GatewaySettings, *, keep_workdir: bool) -> None:
    """Run the gateway; a workdir that was not asked for is a temporary one, removed at exit."""
    workdir = settings.workdir
    if not keep_workdir:
        workdir = Path(tempfile.mkdtemp(prefix=f"gossamer-gateway-{settings.name}-"))
        settings = replace(settings, workdir=workdir)
    try:
        asyncio.run(serve(GatewayRunner(settings)))
    finally:
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
