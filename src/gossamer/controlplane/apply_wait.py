"""``apply --wait``: the apply publishes the model itself, then waits until every proxy that
round changed ACKed it, and until sidecars of strict services refuse plaintext."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gossamer.controlplane.service import ApplyResult, Diff
from gossamer.controlplane.tls_follow import TlsFollower
from gossamer.errors import WaitTimeoutError
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.snapshot import Snapshot

Publish = Callable[[], Awaitable[list[tuple[str, Snapshot]]]]


async def published_and_acked(
    revision: int,
    diff: Diff,
    wait_timeout: float,
    *,
    publish: Publish,
    monitor: XdsMonitor,
    latest: Callable[[str], Snapshot | None],
    mtls: TlsFollower,
) -> ApplyResult:
    """Publish the stored change (``revision``), and wait up to ``wait_timeout`` s until
    every proxy it changed ACKed it (and strict services refuse plaintext); the result
    names those proxies. ``WaitTimeoutError`` says which are behind: the change is stored
    either way."""
    deadline = asyncio.get_running_loop().time() + wait_timeout
    changed = await publish()
    behind = await monitor.wait_synced(changed, wait_timeout, latest)
    if behind:
        raise WaitTimeoutError(
            f"the change is stored (revision {revision}) but {len(behind)} proxies have not "
            f"ACKed it within {wait_timeout:g} s: {', '.join(behind[:5])}; see "
            "`gossamer proxy-status`"
        )
    plaintext = await mtls.wait_strict(deadline, publish, latest)
    if plaintext:
        raise WaitTimeoutError(
            f"the change is stored (revision {revision}) and ACKed, but {len(plaintext)} "
            f"sidecars of strict services still take plaintext after {wait_timeout:g} s: "
            f"{', '.join(plaintext[:5])} (a caller that has not ACKed mTLS to them, or an "
            "Envoy without its certificate); see `gossamer proxy-status`"
        )
    return ApplyResult(revision, diff, [n for n, _ in changed])
