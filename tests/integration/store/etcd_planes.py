"""``gossamer control-plane --store etcd://...`` as its own process (what an operator runs),
for the etcd tests: plaintext API on loopback, xDS with a plaintext port, no telemetry."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from gossamer.envoy.process import ManagedProcess
from gossamer.polling import wait_until


@asynccontextmanager
async def cli_control_plane(
    data: Path, store: str, api: int, xds: int, *extra: str
) -> AsyncIterator[ManagedProcess]:
    """A control plane on ``store`` serving the API on ``api`` and xDS on ``xds``, ready
    (``/readyz`` 200) when entered and stopped when left; ``extra``: more options. Its log
    is ``<data>.log`` beside ``data``."""
    argv = [sys.executable, "-c", "from gossamer.cli.main import run; run()", "control-plane"]
    argv += ["--data-dir", str(data), "--store", store, "--api-tls", "off"]
    argv += ["--api-addr", f"127.0.0.1:{api}", "--xds-addr", f"127.0.0.1:{xds}"]
    argv += ["--xds-tls", "optional", "--xds-tls-addr", "127.0.0.1:0", "--telemetry", "off"]
    argv += extra
    log = data.parent / f"{data.name}.log"
    proc = ManagedProcess(argv, log_path=log, name=f"control-plane {data.name}")
    await proc.start()
    try:
        async with httpx.AsyncClient(trust_env=False) as c:

            async def ready() -> bool:
                if not proc.running:
                    raise AssertionError(f"the control plane exited:\n{proc.log_tail()}")
                try:
                    return (await c.get(f"http://127.0.0.1:{api}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(ready, timeout=60, what="the control plane to be ready")
        yield proc
    finally:
        await proc.stop()
