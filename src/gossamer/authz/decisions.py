"""The audit trail of request decisions made in the data plane (issue 11: every denial
explainable).

A sidecar's compiled RBAC filter denies (or, in audit mode, would deny) a request; a decision
point answers an ext_authz check. Each such decision reaches the control plane as a
``RequestDecision`` keyed by the request id the proxy saw, so ``gossamer authz why ID`` can say
who was refused what, and why. The newest ``keep`` are held in memory with an index by request
id; every record is also appended as one JSON line to a file (0600) by a writer task, so
recording never waits on disk. A control plane starting again reads the newest ``keep``
back from that file (``DecisionTrail.open``; ``authz.decisions_file`` bounds the file and
what a start reads).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from gossamer.authz import decisions_file

log = logging.getLogger(__name__)

#: where a decision came from
SOURCES = ("rbac", "rbac-shadow", "ext_authz")
#: what it was
DECISIONS = ("deny", "allow", "would-deny")


@dataclass(frozen=True, slots=True)
class RequestDecision:
    request_id: str  # x-request-id as the deciding proxy saw it
    at: float  # unix seconds
    source: str  # "rbac" (compiled, a sidecar) | "rbac-shadow" (audit mode) | "ext_authz"
    decision: str  # "deny" | "allow" | "would-deny"
    service: str  # "ns/svc" that was called
    caller: str  # the verified URI SAN of the calling proxy, "" if none
    end_user: str  # "jwt:<issuer>#<sub>" or ""
    method: str
    path: str  # normalised, without the query string
    reason: str  # Envoy's %RESPONSE_CODE_DETAILS% or the decision point's reason
    #: set by the control plane from the reporter's credential, never from a body
    reporter: str = ""
    #: node id of the deciding proxy ("" for a decision point)
    proxy: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> RequestDecision:
        """A record as ``as_dict`` wrote it; ``ValueError`` naming what does not fit."""
        if not isinstance(d, dict):
            raise ValueError(f"not a request decision: {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"not a request decision: unknown fields {sorted(unknown)}")
        at = d.get("at")
        if isinstance(at, bool) or not isinstance(at, int | float):
            raise ValueError(f"at: {at!r} is not a number")
        text = {k: v for k, v in d.items() if k != "at"}
        wrong = sorted(k for k, v in text.items() if not isinstance(v, str))
        if wrong:
            raise ValueError(f"not text: {wrong}")
        return cls(at=float(at), **text)  # type: ignore[arg-type]  # checked: every one a str


class DecisionTrail:
    """The newest ``keep`` request decisions, found by request id, and their file."""

    def __init__(
        self,
        path: Path | None,
        keep: int = 100_000,
        *,
        rotate_bytes: int = decisions_file.ROTATE_BYTES,
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.path = path
        self.keep = keep
        #: past this size the file moves to ``<name>.1`` and a new one starts
        self.rotate_bytes = rotate_bytes
        #: records read back from the file at start, and its lines that did not parse
        self.loaded = 0
        self.skipped = 0
        #: the file ends in a torn line (a crash mid-write): the next append starts a line
        self._torn = False
        self._recent: deque[RequestDecision] = deque()
        self._by_id: dict[str, list[RequestDecision]] = {}
        self._pending: asyncio.Queue[RequestDecision] = asyncio.Queue()
        #: records appended to the file so far
        self.written = 0
        #: records recorded so far (kept or since forgotten)
        self.recorded = 0

    @classmethod
    async def open(cls, path: Path, keep: int = 100_000, **options: Any) -> DecisionTrail:
        """A trail holding the newest ``keep`` records of ``path`` (read in a worker thread,
        from the file's end; lines that do not parse are skipped and counted)."""
        trail = cls(path, keep, **options)
        loaded = await asyncio.to_thread(
            decisions_file.read_newest, path, keep, RequestDecision.from_dict
        )
        for d in loaded.records:
            trail._keep(d)
        trail.loaded, trail.skipped, trail._torn = len(loaded.records), loaded.skipped, loaded.torn
        if loaded.skipped:
            log.warning(
                "%s: skipped %d line(s) that are not request decisions (a torn last line is "
                "what a crash mid-write leaves); read back %d",
                path,
                loaded.skipped,
                trail.loaded,
            )
        return trail

    def record(self, d: RequestDecision) -> None:
        """Keep ``d`` (forgetting the oldest beyond ``keep``) and queue its JSON line."""
        self._keep(d)
        self.recorded += 1
        if self.path is not None:
            self._pending.put_nowait(d)

    def _keep(self, d: RequestDecision) -> None:
        self._recent.append(d)
        self._by_id.setdefault(d.request_id, []).append(d)
        while len(self._recent) > self.keep:
            self._forget(self._recent.popleft())

    def _forget(self, old: RequestDecision) -> None:
        same = self._by_id.get(old.request_id)
        if not same:
            return
        same.remove(old)  # the oldest is first: removing by equality finds it first
        if not same:
            del self._by_id[old.request_id]

    def find(self, request_id: str) -> list[RequestDecision]:
        """Every kept record of ``request_id``, oldest first (a request may be decided by
        more than one proxy, or reported twice)."""
        return list(self._by_id.get(request_id, ()))

    def recent(
        self,
        limit: int = 100,
        *,
        service: str | None = None,
        decision: str | None = None,
    ) -> list[RequestDecision]:
        """Up to ``limit`` kept records, newest first, of ``service`` / ``decision`` if given."""
        out: list[RequestDecision] = []
        for d in reversed(self._recent):
            if len(out) >= limit:
                break
            if service is not None and d.service != service:
                continue
            if decision is not None and d.decision != decision:
                continue
            out.append(d)
        return out

    def __len__(self) -> int:
        return len(self._recent)

    async def run(self) -> None:
        """Append recorded decisions to the file until cancelled (run it in a TaskGroup)."""
        if self.path is None:
            return
        while True:
            batch = [await self._pending.get()]
            while not self._pending.empty():
                batch.append(self._pending.get_nowait())
            lines = "".join(json.dumps(d.as_dict(), sort_keys=True) + "\n" for d in batch)
            if self._torn:  # after a torn line: a line of its own, not glued to it
                lines = "\n" + lines
            await asyncio.to_thread(
                decisions_file.append, self.path, lines, rotate_bytes=self.rotate_bytes
            )
            self._torn = False
            self.written += len(batch)
