"""The audit trail of access decisions made through the control plane.

Every decision is kept in memory (the newest ``keep``) and appended as one JSON line to a file
in the data directory; a writer task does the file I/O, so a decision never waits on disk.
Each entry says who asked, about whom and what, the decision, and the rule behind it: the
prohibitions that removed the right, or the policy classes in which no association grants it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: float
    #: who asked (the API caller as it identified itself; "" if anonymous)
    caller: str
    user: str
    target: str
    right: str
    process: str | None
    decision: str  # "allow" | "deny"
    #: why, in one line
    rule: str
    rights: list[str] = field(default_factory=list)


class AuditLog:
    def __init__(self, path: Path | None, keep: int = 10_000) -> None:
        self.path = path
        self._recent: deque[AuditEntry] = deque(maxlen=keep)
        self._pending: asyncio.Queue[AuditEntry] = asyncio.Queue()
        self.written = 0

    def record(self, entry: AuditEntry) -> None:
        self._recent.append(entry)
        if self.path is not None:
            self._pending.put_nowait(entry)

    def recent(self, limit: int = 100, user: str | None = None) -> list[AuditEntry]:
        entries = [e for e in self._recent if user is None or e.user == user]
        return entries[-limit:][::-1]

    async def run(self) -> None:
        """Append recorded entries to the file until cancelled (run it in a TaskGroup)."""
        if self.path is None:
            return
        while True:
            batch = [await self._pending.get()]
            while not self._pending.empty():
                batch.append(self._pending.get_nowait())
            lines = "".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in batch)
            await asyncio.to_thread(self._append, lines)
            self.written += len(batch)

    def _append(self, lines: str) -> None:
        assert self.path is not None
        # 0600 whatever the umask: who may do what is no one else's business (issue 7, R6)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            os.fchmod(fd, 0o600)
            f.write(lines)


def now() -> float:
    return time.time()
