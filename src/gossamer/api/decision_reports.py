"""``POST /v1/authz/decisions``: decision points (``gossamer authz serve``) report every
request they decided, allowed or denied, into the audit trail; each allowed one is an NGAC
event, so obligations fire on it (issue 11, dynamic mode; docs/ngac.md, "`gossamer authz
serve`").

Authenticated by a decision point's token (``gossamer token create --decision-point NAME``:
``POST`` on ``gossamer:authz-decisions``; administrators' tokens hold it too, read-only
ones do not). The control plane sets ``source`` (``ext_authz``) and ``reporter`` (the
token's name) itself, never from the body. A batch with an invalid record is refused whole
(422 naming ``decisions[i].<field>``) and records nothing.

An allowed request is the event ``Event(user=<end user, or the caller without one>,
operation=<method>, target=<the attribute decided on, on the graph now>)``. Events go to a
bounded queue (:class:`DecisionEvents`; a flood beyond it is dropped and counted, identical
events queued together fire once) that a task of the control plane fires through the
engine (``AuthzEngine.fire``: responses checked, made durable, replayed), never on the
request's path. With no obligation in the graph nothing is queued at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, FastAPI, Request
from pydantic import Field

from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.readiness import Loading, require_ready
from gossamer.api.schemas import Body
from gossamer.authz.decisions import DecisionTrail, RequestDecision
from gossamer.authz.engine import AuthzEngine
from gossamer.authz.mesh_names import path_of
from gossamer.authz.obligations import Event
from gossamer.authz.requests import deciding_target
from gossamer.errors import FieldError, ValidationError
from gossamer.registry.api_access import DECISIONS_OBJECT
from gossamer.registry.operators import Operator

log = logging.getLogger(__name__)

DECISIONS_PATH = "/v1/authz/decisions"
#: the source of every record reported here
SOURCE = "ext_authz"
#: records in one report at most
MAX_REPORTED = 1000
#: events waiting to fire at most (beyond that each new one is dropped and counted)
EVENT_CAPACITY = 10_000
#: events fired in one run of the event processor (it stops a run at 1000, cascades included)
EVENT_BATCH = 100


class DecisionPointDecision(Body):
    """One request as the decision point decided it."""

    #: the request's x-request-id
    request_id: str = Field(min_length=1, max_length=256)
    at: float = Field(ge=0)
    decision: Literal["allow", "deny"]
    #: ``NS/NAME`` of the service called (the route's context extension)
    service: str = Field(min_length=3, max_length=254)
    #: the calling proxy's verified URI SAN ("" if none)
    caller: str = Field(default="", max_length=2048)
    #: ``jwt:<issuer>#<sub>`` ("" without a token)
    end_user: str = Field(default="", max_length=2048)
    method: str = Field(min_length=1, max_length=32)
    path: str = Field(max_length=8192)
    reason: str = Field(default="", max_length=2048)


class DecisionPointReport(Body):
    decisions: list[DecisionPointDecision] = Field(max_length=MAX_REPORTED)


class DecisionPointAnswer(Body):
    recorded: int
    #: events queued for the obligations (allowed requests, while some obligation exists)
    events: int


def _service(text: str) -> tuple[str, str] | None:
    ns, sep, name = text.partition("/")
    return (ns, name) if sep and ns and name and "/" not in name else None


@dataclass
class EventStats:
    queued: int = 0
    dropped: int = 0
    fired: int = 0
    #: obligation responses that failed (recorded, nothing changed)
    failed: int = 0


class DecisionEvents:
    """Allowed requests' events on their way to the obligations: bounded, deduplicated,
    fired a batch at a time by :meth:`run` (in the control plane's TaskGroup)."""

    def __init__(self, engine: AuthzEngine, capacity: int = EVENT_CAPACITY) -> None:
        self.engine = engine
        self.capacity = capacity
        self._pending: OrderedDict[Event, None] = OrderedDict()
        self._ready = asyncio.Event()
        self.stats = EventStats()

    def wanted(self) -> bool:
        """Whether any obligation could match an event (else nothing is queued)."""
        return bool(len(self.engine.pap.obligations))

    def offer(self, events: list[Event]) -> int:
        """Queue ``events`` (identical waiting ones once); returns how many were new."""
        added = 0
        for e in events:
            if e in self._pending:
                continue
            if len(self._pending) >= self.capacity:
                self.stats.dropped += 1
                continue
            self._pending[e] = None
            added += 1
        self.stats.queued += added
        if self._pending:
            self._ready.set()
        return added

    def take(self, limit: int = EVENT_BATCH) -> list[Event]:
        out: list[Event] = []
        while self._pending and len(out) < limit:
            out.append(self._pending.popitem(last=False)[0])
        if not self._pending:
            self._ready.clear()
        return out

    async def fire_pending(self) -> None:
        """Fire what is queued now, a batch at a time."""
        while batch := self.take():
            try:
                firings = await self.engine.fire(batch)
            except Exception as e:  # the store refused the responses: they changed nothing
                log.warning("obligations on %d decision events not run: %s", len(batch), e)
                self.stats.failed += len(batch)
                continue
            for f in firings:
                if f.error is None:
                    self.stats.fired += 1
                else:
                    self.stats.failed += 1
                    log.info("obligation %s on %s failed: %s", f.obligation, f.event, f.error)

    async def run(self) -> None:
        while True:
            await self._ready.wait()
            await self.fire_pending()


def events_of(engine: AuthzEngine, records: list[RequestDecision]) -> list[Event]:
    """The NGAC events of the allowed ``records``: who did which method on the attribute
    the graph decides the request on now."""
    graph = engine.graph
    out: list[Event] = []
    for d in records:
        user = d.end_user or d.caller
        ref = _service(d.service)
        if d.decision != "allow" or not user or ref is None:
            continue
        target = deciding_target(graph, ref, d.path)
        if target is not None:
            out.append(Event(user, d.method, target))
    return out


def accept(report: DecisionPointReport, reporter: str) -> list[RequestDecision]:
    """The report's records as the trail keeps them; ``ValidationError`` naming each bad
    field (nothing is recorded then)."""
    errors: list[FieldError] = []
    records: list[RequestDecision] = []
    for i, r in enumerate(report.decisions):
        if _service(r.service) is None:
            errors.append(
                FieldError(
                    f"{r.service!r} is not NAMESPACE/NAME of a service (e.g. default/cart)",
                    f"decisions[{i}].service",
                )
            )
            continue
        records.append(
            RequestDecision(
                request_id=r.request_id,
                at=r.at,
                source=SOURCE,
                decision=r.decision,
                service=r.service,
                caller=r.caller,
                end_user=r.end_user,
                method=r.method,
                path=path_of(r.path),
                reason=r.reason,
                reporter=reporter,
            )
        )
    if errors:
        raise ValidationError(errors)
    return records


def install_decision_reports(
    app: FastAPI,
    trail: DecisionTrail,
    events: DecisionEvents,
    ready: Loading,
    auth: Authenticator | None,
) -> None:
    router = APIRouter(
        tags=["authz"],
        dependencies=[require_ready(ready), require_operator(auth, on=DECISIONS_OBJECT)],
    )

    @router.post(DECISIONS_PATH, response_model=DecisionPointAnswer)
    async def report(body: DecisionPointReport, request: Request) -> DecisionPointAnswer:
        """Record a decision point's decisions (source ``ext_authz``); the allowed ones are
        NGAC events for the obligations."""
        who = getattr(request.state, "operator", None)
        records = accept(body, who.name if isinstance(who, Operator) else "")
        for d in records:
            trail.record(d)
        queued = events.offer(events_of(events.engine, records)) if events.wanted() else 0
        return DecisionPointAnswer(recorded=len(records), events=queued)

    app.include_router(router)


__all__ = ["DecisionEvents", "install_decision_reports"]
