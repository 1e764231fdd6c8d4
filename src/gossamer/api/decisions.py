"""Request decisions in the audit trail (issue 11, "every denial explainable"; docs/ngac.md,
"The audit trail of requests").

In: ``POST /v1/agents/{agent_id}/decisions`` — an agent reports what its sidecars' compiled
RBAC denied (and, in audit mode, would have denied). Each record names the Workload whose
Envoy decided; a Workload the agent did not register is refused (403, nothing recorded).
The control plane sets the service (the Workload's), the proxy (its node id) and the
reporter (the agent) itself, never from the body.

Out (operators with the read right): ``GET /v1/authz/decisions/{request_id}`` — the records
of one request with, per record, the engine's explanation of it on the graph as it is now
(``authz.why``); ``GET /v1/authz/decisions?limit=&service=&decision=`` — the newest records.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query
from pydantic import Field

from gossamer.api.agents import require_agent
from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.readiness import require_ready
from gossamer.api.schemas import Body
from gossamer.authz.decisions import DecisionTrail, RequestDecision
from gossamer.authz.engine import AuthzEngine
from gossamer.authz.why import explain_request
from gossamer.errors import FieldError, NotFoundError, PermissionDeniedError, ValidationError
from gossamer.model.snapshot import ModelSnapshot
from gossamer.registry import Registry
from gossamer.registry.workloads import owned_workloads
from gossamer.types import ProxyIdentity, ResourceKey

DECISIONS_PATH = "/v1/authz/decisions"
#: upper bound on records in one agent report
MAX_REPORTED = 1000
#: upper bound on ``limit`` of the list
MAX_LIST = 10_000

#: what a compiled RBAC source may decide
_DECIDED = {"rbac": "deny", "rbac-shadow": "would-deny"}


class ReportedDecision(Body):
    """One denial a sidecar's RBAC made (``rbac``) or would have made (``rbac-shadow``)."""

    #: ``NS/NAME`` of the Workload whose Envoy decided
    workload: str = Field(min_length=3, max_length=254)
    request_id: str = Field(min_length=1, max_length=256)
    at: float = Field(ge=0)
    source: Literal["rbac", "rbac-shadow"]
    decision: Literal["deny", "would-deny"]
    caller: str = Field(default="", max_length=2048)
    method: str = Field(min_length=1, max_length=32)
    path: str = Field(max_length=8192)
    reason: str = Field(default="", max_length=2048)


class DecisionsReport(Body):
    decisions: list[ReportedDecision] = Field(max_length=MAX_REPORTED)


class ReportAnswer(Body):
    recorded: int


class DecisionBody(Body):
    request_id: str
    at: float
    source: str
    decision: str
    service: str
    caller: str
    end_user: str
    method: str
    path: str
    reason: str
    reporter: str
    proxy: str

    @classmethod
    def of(cls, d: RequestDecision) -> DecisionBody:
        return cls(**d.as_dict())


class ExplainedDecision(DecisionBody):
    #: the engine on the graph now: ``user``, ``target``, ``method``, ``allowed``, ``rule``,
    #: ``explanation`` (paths and prohibitions)
    why: dict[str, Any]


class DecisionsOfRequest(Body):
    request_id: str
    decisions: list[ExplainedDecision]


class DecisionList(Body):
    items: list[DecisionBody]


def accept_report(
    trail: DecisionTrail, model: ModelSnapshot | None, agent_id: str, report: DecisionsReport
) -> int:
    """Record an agent's report; ``PermissionDeniedError`` (nothing recorded) if any record
    names a Workload the agent did not register, ``ValidationError`` if a source and its
    decision disagree."""
    owned = owned_workloads(model, agent_id) if model is not None else {}
    errors: list[FieldError] = []
    foreign: list[str] = []
    records: list[RequestDecision] = []
    for i, r in enumerate(report.decisions):
        if _DECIDED[r.source] != r.decision:
            errors.append(
                FieldError(
                    f"a {r.source!r} record decides {_DECIDED[r.source]!r}, not {r.decision!r}",
                    f"decisions[{i}].decision",
                )
            )
            continue
        ns, _, name = r.workload.partition("/")
        w = owned.get(ResourceKey("Workload", ns, name))
        if w is None:
            foreign.append(r.workload)
            continue
        records.append(
            RequestDecision(
                request_id=r.request_id,
                at=r.at,
                source=r.source,
                decision=r.decision,
                service=f"{ns}/{w.spec.service}",
                caller=r.caller,
                end_user="",
                method=r.method,
                path=r.path,
                reason=r.reason,
                reporter=agent_id,
                proxy=ProxyIdentity("sidecar", ns, name).node_id,
            )
        )
    if errors:
        raise ValidationError(errors)
    if foreign:
        names = ", ".join(sorted(set(foreign)))
        raise PermissionDeniedError(
            f"agent {agent_id} reported decisions of Workload(s) {names}, which it did not "
            "register: an agent reports only its own sidecars' decisions; nothing was recorded"
        )
    for d in records:
        trail.record(d)
    return len(records)


def install_decisions(
    app: FastAPI,
    trail: DecisionTrail,
    engine: AuthzEngine,
    registry: Registry | None,
    auth: Authenticator | None,
) -> None:
    """Serve the trail's routes on ``app`` (the agents' report only with ``registry``)."""
    if registry is not None:
        install_agent_reports(app, trail, registry)
    install_decision_queries(app, trail, engine, auth)


def install_agent_reports(app: FastAPI, trail: DecisionTrail, registry: Registry) -> None:
    """``POST /v1/agents/{agent_id}/decisions`` (the agent's credential)."""
    reports = APIRouter(prefix="/v1", tags=["agents"])

    @reports.post(
        "/agents/{agent_id}/decisions",
        response_model=ReportAnswer,
        dependencies=[require_ready(registry.plane), require_agent(registry)],
    )
    async def report(agent_id: str, body: DecisionsReport) -> ReportAnswer:
        """Record what the agent's sidecars denied (or would have, in audit mode)."""
        return ReportAnswer(recorded=accept_report(trail, registry.plane.model, agent_id, body))

    app.include_router(reports)


def install_decision_queries(
    app: FastAPI, trail: DecisionTrail, engine: AuthzEngine, auth: Authenticator | None
) -> None:
    """``GET /v1/authz/decisions[/{request_id}]`` (operators with the read right)."""
    router = APIRouter(tags=["authz"], dependencies=[require_operator(auth)])

    @router.get(DECISIONS_PATH + "/{request_id}", response_model=DecisionsOfRequest)
    async def of_request(request_id: str) -> DecisionsOfRequest:
        """Every recorded decision of one request, each explained on the graph now."""
        found = trail.find(request_id)
        if not found:
            raise NotFoundError(
                f"no decision is recorded for request id {request_id!r}: a sidecar's "
                "compiled RBAC reports only its denials (a request it allowed leaves none), "
                "a decision point (`gossamer authz serve`) reports its allows and denials; "
                f"the trail keeps the newest {trail.keep} (see `gossamer authz denials`), and "
                "a record takes a moment to reach the control plane (a sidecar's through its "
                "host's agent)"
            )
        if engine.rebuild_pending:
            await engine.rebuild()
        graph = engine.graph
        return DecisionsOfRequest(
            request_id=request_id,
            decisions=[
                ExplainedDecision(
                    **d.as_dict(),
                    why=explain_request(graph, d.end_user or d.caller, d.service, d.method, d.path),
                )
                for d in found
            ],
        )

    @router.get(DECISIONS_PATH, response_model=DecisionList)
    async def recent(
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
        service: Annotated[str | None, Query(description="NS/NAME")] = None,
        decision: Annotated[Literal["deny", "allow", "would-deny"] | None, Query()] = None,
    ) -> DecisionList:
        """The newest recorded decisions, of ``service`` / ``decision`` if given."""
        items = trail.recent(limit, service=service, decision=decision)
        return DecisionList(items=[DecisionBody.of(d) for d in items])

    app.include_router(router)


__all__ = [
    "DECISIONS_PATH",
    "accept_report",
    "install_agent_reports",
    "install_decision_queries",
    "install_decisions",
]
