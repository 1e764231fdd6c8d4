"""Follow Envoy's output file: access-log lines go to the gateway's stdout, Envoy's own
warnings and errors to its stderr, the rest stays in the file.

The gateway's access log is one JSON object per line (see
``gossamer.translate.hcm.ACCESS_LOG_FORMAT``); Envoy's own lines start with
``[time][thread][level][logger]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from enum import Enum
from pathlib import Path

_LEVEL = re.compile(r"^\[[^\]]*\](?:\[[^\]]*\])*?\[(trace|debug|info|warning|error|critical)\]")
_LOUD = frozenset({"warning", "error", "critical"})
#: the most read from the file in one step (a burst of access logs is read in pieces)
_CHUNK = 1 << 20


class Kind(Enum):
    ACCESS = "access"
    MESSAGE = "message"
    QUIET = "quiet"


def classify(line: str) -> Kind:
    """Where a line of Envoy's output belongs: the access log, a message for the operator
    (a warning, an error, anything unrecognised such as a crash report) or only the file."""
    if line.startswith("{"):
        return Kind.ACCESS
    if not line.strip():
        return Kind.QUIET
    match = _LEVEL.match(line)
    if match is None:
        return Kind.MESSAGE
    return Kind.MESSAGE if match[1] in _LOUD else Kind.QUIET


class LogForwarder:
    """Follows ``path`` from where it ended when the forwarder was made (earlier runs of
    Envoy appended to the same file) and hands each complete line on."""

    def __init__(
        self,
        path: Path,
        on_access: Callable[[str], None],
        on_message: Callable[[str], None],
        *,
        interval: float = 0.1,
    ) -> None:
        self.path = path
        self._on_access = on_access
        self._on_message = on_message
        self._interval = interval
        self._offset = path.stat().st_size if path.exists() else 0
        self._partial = b""

    async def run(self, stop: asyncio.Event) -> None:
        """Forward lines until ``stop`` is set, then whatever is left in the file."""
        while not stop.is_set():
            if not await self.step():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await stop.wait()
        while await self.step():
            pass

    async def step(self) -> bool:
        """Forward the complete lines written since the last step; whether there were any."""
        data = await asyncio.to_thread(self._read)
        if not data:
            return False
        *lines, self._partial = (self._partial + data).split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            kind = classify(line)
            if kind is Kind.ACCESS:
                self._on_access(line)
            elif kind is Kind.MESSAGE:
                self._on_message(line)
        return True

    def _read(self) -> bytes:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read(_CHUNK)
        except FileNotFoundError:
            return b""
        self._offset += len(data)
        return data
