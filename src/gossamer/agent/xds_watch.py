"""Whether the control plane's xDS answers, said once per change.

Envoy retries its xDS connection quietly (a debug line per attempt), so a host whose
control plane is down, or was given the wrong xDS address, would otherwise run on with
stale or no config and say nothing. ``XdsWatch`` tries a TCP connection to each xDS
address every ``every`` seconds and logs one warning when none answers and one line when
one answers again: one line per event, never per retry. It only reads: the proxies keep
their last config either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from gossamer.ports import host_port

log = logging.getLogger(__name__)

#: seconds between two checks
CHECK_EVERY_S = 5.0
#: seconds a connection attempt may take
CONNECT_TIMEOUT_S = 3.0


async def answers(address: tuple[str, int], timeout: float = CONNECT_TIMEOUT_S) -> bool:  # noqa: ASYNC109
    """Whether ``address`` accepts a TCP connection within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(*address)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class XdsWatch:
    """Checks ``addresses`` (the control plane's xDS, as this host dials it) until
    cancelled; ``warn``/``note`` get the lines (default: this module's logger)."""

    def __init__(
        self,
        addresses: Sequence[tuple[str, int]],
        *,
        who: str = "this host",
        every: float = CHECK_EVERY_S,
        warn: Callable[[str], None] | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.addresses = list(addresses)
        self.who = who
        self.every = every
        self._warn = warn or log.warning
        self._note = note or log.info
        #: the last result: None before the first check
        self.answering: bool | None = None

    def _listed(self) -> str:
        return ", ".join(host_port(a) for a in self.addresses)

    async def check(self) -> bool:
        """One check; says so if the result changed (not on a first success)."""
        found = await asyncio.gather(*(answers(a) for a in self.addresses))
        ok = any(found)
        if not ok and self.answering is not False:
            self._warn(
                f"{self.who}: no xDS address of the control plane answers "
                f"({self._listed()}); its proxies keep their last config and keep trying. "
                "Check that the control plane runs and serves xDS there (its --xds-addr, "
                "--xds-tls-addr; GET /xds-addresses names them)"
            )
        elif ok and self.answering is False:
            up = ", ".join(
                host_port(a) for a, yes in zip(self.addresses, found, strict=True) if yes
            )
            self._note(f"{self.who}: the control plane's xDS answers again ({up})")
        self.answering = ok
        return ok

    async def run(self) -> None:
        """Check every ``every`` seconds until cancelled."""
        if not self.addresses:
            return
        while True:
            await self.check()
            await asyncio.sleep(self.every)
