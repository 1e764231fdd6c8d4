"""The ``gossamer gateway`` process: a runner until SIGTERM or SIGINT, then a drain."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from gossamer.agent.connect import xds_target
from gossamer.agent.xds_watch import XdsWatch
from gossamer.gateway.host import GatewayHost, obtain
from gossamer.gateway.runner import GatewayRunner
from gossamer.gateway.settings import GatewaySettings
from gossamer.ports import Address


@dataclass(frozen=True)
class Joining:
    """How the gateway gets its credential (``--state-dir``, ``--token``): see
    ``gateway.host``. ``xds_tls``: ``--xds-tls-addr``, over what the control plane
    advertised at join."""

    state_dir: Path
    token: str | None
    server: str
    host: str
    xds_tls: tuple[Address, ...] | None = None
    ca_file: Path | None = None


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


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _serve(settings: GatewaySettings, joining: Joining | None) -> None:
    host: GatewayHost | None = None
    if joining is not None:
        gateway = f"{settings.namespace}/{settings.name}"
        host = await obtain(
            joining.state_dir,
            gateway=gateway,
            token=joining.token,
            server=joining.server,
            host=joining.host,
            say=lambda line: _note(f"gateway {gateway}: {line}"),
            ca_file=joining.ca_file,
        )
    if host is None:
        _note(
            f"gateway {settings.namespace}/{settings.name}: no credential (--token, "
            "--state-dir): no mesh identity, so it calls services in plaintext, which "
            "services in mtls mode strict refuse (docs/security.md#gateway-identity)"
        )
    else:
        assert joining is not None
        # with a credential: the xDS address it learnt at join (mTLS when offered)
        target = xds_target(host.credential, xds_tls=joining.xds_tls)
        settings = replace(settings, xds_addrs=target.addresses, xds_tls=target.tls)
    who = f"gateway {settings.namespace}/{settings.name}"
    watch = XdsWatch(settings.xds_addrs, who=who, warn=_note, note=_note)
    try:
        async with asyncio.TaskGroup() as tg:
            watching = tg.create_task(watch.run())  # one line when xDS stops/starts answering
            try:
                await serve(GatewayRunner(settings, host=host))
            finally:
                watching.cancel()
    except BaseExceptionGroup as group:  # the runner's error comes out as itself
        raise group.exceptions[0] if len(group.exceptions) == 1 else group from None


def main(settings: GatewaySettings, *, keep_workdir: bool, joining: Joining | None = None) -> None:
    """Run the gateway; a workdir that was not asked for is a temporary one, removed at exit."""
    workdir = settings.workdir
    if not keep_workdir:
        workdir = Path(tempfile.mkdtemp(prefix=f"gossamer-gateway-{settings.name}-"))
        settings = replace(settings, workdir=workdir)
    try:
        asyncio.run(_serve(settings, joining))
    finally:
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
