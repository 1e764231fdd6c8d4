"""Routes of a host's long-poll (docs/agent-protocol.md, "Requests to the host"): the
control plane asks an agent (or gateway host) for its own Envoys' config dumps, and the
host answers. Both carry the agent's credential, like its other calls; each poll is a
heartbeat. The broker is ``gossamer.registry.dumps.DumpBroker``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field

from gossamer.api.agents import UnauthorizedBody, require_agent
from gossamer.api.readiness import require_ready
from gossamer.api.schemas import Body, ErrorBody
from gossamer.registry import Registry
from gossamer.registry.dumps import MAX_POLL_S, DumpBroker, DumpRequest

#: the longest error line a host may send back
MAX_ERROR_CHARS = 2000

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": UnauthorizedBody, "description": "missing, wrong or revoked credential"},
    404: {"model": ErrorBody, "description": "no such pending request of this agent"},
    422: {"model": ErrorBody, "description": "a bad timeout or answer"},
    503: {"model": ErrorBody, "description": "still loading"},
}


class HostRequestBody(Body):
    id: str
    #: what is asked of one of this host's Envoys: its config dump, or its stats whose
    #: names start with one of ``prefixes`` (``gossamer describe``)
    kind: Literal["config_dump", "stats"]
    node_id: str
    #: config_dump: ask Envoy for its endpoints too (``/config_dump?include_eds``)
    include_eds: bool = False
    #: stats: plain stat-name prefixes (the host makes Envoy's filter of them)
    prefixes: list[str] | None = None

    @classmethod
    def of(cls, r: DumpRequest) -> HostRequestBody:
        if r.kind == "stats":
            return cls(id=r.id, kind="stats", node_id=r.node_id, prefixes=list(r.prefixes))
        return cls(id=r.id, kind="config_dump", node_id=r.node_id, include_eds=r.include_eds)


class HostRequests(Body):
    #: empty when the poll timed out with nothing asked
    requests: list[HostRequestBody]


class HostAnswer(Body):
    """One of ``dump`` (Envoy's ``/config_dump`` as it answered) or ``error`` (one line:
    why the host could not read it)."""

    dump: dict[str, Any] | None = None
    error: str | None = Field(default=None, max_length=MAX_ERROR_CHARS)


class Accepted(Body):
    accepted: bool


async def _cancel_when_gone(request: Request, task: asyncio.Task[Any]) -> None:
    """Cancel a poll once its host hung up: a request handed to a dead connection would
    be lost, and the asker would be told the host is slow rather than offline."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    task.cancel()


def host_requests_router(registry: Registry, dumps: DumpBroker) -> APIRouter:
    router = APIRouter(
        prefix="/v1/agents/{agent_id}/requests",
        tags=["agents"],
        responses=_ERRORS,
        dependencies=[require_ready(registry.plane), require_agent(registry)],
    )

    @router.get("", response_model=HostRequests)
    async def poll(
        agent_id: str,
        request: Request,
        wait_timeout: Annotated[
            float,
            Query(alias="timeout", gt=0, le=MAX_POLL_S, description="seconds to wait"),
        ] = 30.0,
    ) -> HostRequests:
        """The host's long-poll: what the control plane asks of it, as soon as there is
        something, else an empty list after ``timeout`` s. A newer poll of the same agent
        ends this one (with an empty list)."""
        async with asyncio.TaskGroup() as tg:
            polled = tg.create_task(dumps.poll(agent_id, wait_timeout))
            watch = tg.create_task(_cancel_when_gone(request, polled))
            polled.add_done_callback(lambda _: watch.cancel())
        requests = [] if polled.cancelled() else polled.result()
        return HostRequests(requests=[HostRequestBody.of(r) for r in requests])

    @router.post("/{request_id}", response_model=Accepted)
    async def answer(agent_id: str, request_id: str, body: HostAnswer) -> Accepted:
        """The host's answer to one of its requests (404 for any other request)."""
        dumps.answer(agent_id, request_id, dump=body.dump, error=body.error)
        return Accepted(accepted=True)

    return router
