"""``DumpBroker``: config dumps asked of the host that runs a proxy, never fetched by us.

The control plane never opens a connection a proxy chose (a node's metadata can name any
URL: issue 9, "No request forgery"), and a remote Envoy's admin API listens on its host's
loopback anyway. So ``proxy-config`` asks the host: each agent (and gateway host) keeps one
long-poll open (``GET /v1/agents/{id}/requests``) that hands it the requests for its own
Envoys; it reads its Envoy's admin API from its local record and posts the answer
(``POST /v1/agents/{id}/requests/{rid}``). The broker holds what is pending per agent and
the futures the API waits on; it does no I/O (``gossamer.api.host_requests`` serves it).

``runners_of`` says which agents run a proxy: a sidecar's Workload's owner label, the
gateway hosts holding a join token scoped to a gateway. Nothing a proxy says counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gossamer.errors import EnvoyError, NotFoundError, PollTimeoutError
from gossamer.model.snapshot import ModelSnapshot
from gossamer.registry.record_manifests import REGISTRY_NAMESPACE, Agent
from gossamer.types import OWNER_LABEL, ResourceKey

#: a long-poll answers (with no request) after at most this long
MAX_POLL_S = 60.0
#: how long ``proxy-config`` waits for the host unless told, and the longest it may
DEFAULT_DUMP_TIMEOUT_S = 10.0
MAX_DUMP_TIMEOUT_S = 60.0
#: requests waiting for one agent at most (a host that never polls cannot pile them up)
MAX_PENDING = 32


#: the most stat-name prefixes one ``stats`` request may carry, and the longest one
MAX_STAT_PREFIXES = 64
MAX_STAT_PREFIX_CHARS = 512


@dataclass(frozen=True)
class DumpRequest:
    """A config dump (``kind`` ``config_dump``) or the counters and gauges whose names start
    with one of ``prefixes`` (``stats``: plain names, never a pattern or a URL) asked of
    ``agent_id`` for its Envoy ``node_id``."""

    id: str
    agent_id: str
    node_id: str
    include_eds: bool
    kind: str = "config_dump"
    prefixes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """What the agent gets: the request id, its Envoy's node id and the query."""
        body: dict[str, Any] = {"id": self.id, "kind": self.kind, "nodeId": self.node_id}
        if self.kind == "stats":
            return {**body, "prefixes": list(self.prefixes)}
        return {**body, "includeEds": self.include_eds}


@dataclass
class _Waiting:
    request: DumpRequest
    answer: asyncio.Future[dict[str, Any]]
    host: str
    delivered: bool = False


@dataclass
class _Agent:
    queue: deque[str] = field(default_factory=deque)
    #: the newest poll's wake-up (an older poll of the same agent is superseded: its
    #: connection may be dead, and nothing must be handed to it)
    poll: asyncio.Event | None = None


class DumpBroker:
    """Pending config-dump requests per agent and the futures their askers wait on."""

    def __init__(self, new_id: Callable[[], str] = lambda: secrets.token_urlsafe(12)) -> None:
        self._new_id = new_id
        self._agents: dict[str, _Agent] = {}
        self._waiting: dict[str, _Waiting] = {}
        self._released = False

    def release(self) -> None:
        """The server is stopping: every open poll answers now (with what it has), and
        later ones at once, rather than holding the shutdown for the rest of their wait."""
        self._released = True
        for agent in self._agents.values():
            if agent.poll is not None:
                agent.poll.set()

    def _agent(self, agent_id: str) -> _Agent:
        return self._agents.setdefault(agent_id, _Agent())

    def polling(self, agent_id: str) -> bool:
        """Whether ``agent_id`` has a long-poll open now."""
        agent = self._agents.get(agent_id)
        return agent is not None and agent.poll is not None

    def pending(self, agent_id: str) -> int:
        """Requests asked of ``agent_id`` not yet answered (delivered or not)."""
        return sum(1 for w in self._waiting.values() if w.request.agent_id == agent_id)

    # -- the asker (``proxy-config``) --------------------------------------------------------

    async def config_dump(
        self,
        agent_id: str,
        node_id: str,
        *,
        host: str,
        include_eds: bool,
        timeout: float = DEFAULT_DUMP_TIMEOUT_S,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Ask ``agent_id`` (of ``host``) for the config dump of its Envoy ``node_id`` and
        wait up to ``timeout`` s: ``PollTimeoutError`` saying whether the host never picked
        the request up (offline) or did not answer (slow); ``EnvoyError`` with the host's
        own error (e.g. its Envoy's admin API does not answer)."""
        request = DumpRequest(self._new_id(), agent_id, node_id, include_eds)
        return await self._wait(request, host, timeout)

    async def stats(
        self,
        agent_id: str,
        node_id: str,
        prefixes: Sequence[str],
        *,
        host: str,
        timeout: float = DEFAULT_DUMP_TIMEOUT_S,  # noqa: ASYNC109
    ) -> dict[str, int]:
        """Ask ``agent_id`` for the counters and gauges of its Envoy ``node_id`` whose names
        start with one of ``prefixes``; errors as ``config_dump``."""
        if not prefixes or len(prefixes) > MAX_STAT_PREFIXES:
            raise ValueError(f"1..{MAX_STAT_PREFIXES} stat prefixes, not {len(prefixes)}")
        if any(not p or len(p) > MAX_STAT_PREFIX_CHARS for p in prefixes):
            raise ValueError(f"a stat prefix is empty or over {MAX_STAT_PREFIX_CHARS} chars")
        request = DumpRequest(
            self._new_id(), agent_id, node_id, False, kind="stats", prefixes=tuple(prefixes)
        )
        answer = await self._wait(request, host, timeout)
        stats = answer.get("stats")
        if not isinstance(stats, dict):
            raise EnvoyError(f"host {host} answered the stats of {node_id} without stats")
        return {
            str(k): v
            for k, v in stats.items()
            if isinstance(v, int) and any(str(k).startswith(p) for p in prefixes)
        }

    async def _wait(
        self,
        request: DumpRequest,
        host: str,
        timeout: float,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        waiting = self._ask(request, host)
        try:
            async with asyncio.timeout(timeout):
                return await waiting.answer
        except TimeoutError:
            raise PollTimeoutError(_late(waiting, timeout)) from None
        finally:
            self._forget(waiting.request.id)

    def _ask(self, request: DumpRequest, host: str) -> _Waiting:
        agent = self._agent(request.agent_id)
        if len(agent.queue) >= MAX_PENDING:
            raise PollTimeoutError(
                f"host {host} has {len(agent.queue)} {_REQUEST[request.kind]} requests it "
                "has not picked "
                "up: its agent is offline or not polling; check `gossamer agents list`"
            )
        waiting = _Waiting(request, asyncio.get_running_loop().create_future(), host)
        self._waiting[request.id] = waiting
        agent.queue.append(request.id)
        if agent.poll is not None:
            agent.poll.set()
        return waiting

    def _forget(self, request_id: str) -> None:
        waiting = self._waiting.pop(request_id, None)
        if waiting is None:
            return
        agent = self._agents.get(waiting.request.agent_id)
        if agent is not None and request_id in agent.queue:
            agent.queue.remove(request_id)
        if agent is not None and not agent.queue and agent.poll is None:
            del self._agents[waiting.request.agent_id]

    # -- the host (its agent's long-poll and answers) ----------------------------------------

    async def poll(self, agent_id: str, timeout: float) -> list[DumpRequest]:  # noqa: ASYNC109
        """The requests for ``agent_id`` not yet handed out, once there are any or after
        ``timeout`` s (then none). Each request is handed out once, to the agent's newest
        poll: a new poll ends an older one of the same agent at once, with none."""
        agent = self._agent(agent_id)
        if agent.poll is not None:
            agent.poll.set()
        mine = agent.poll = asyncio.Event()
        try:
            if not agent.queue and not self._released:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(timeout, MAX_POLL_S)):
                        await mine.wait()
            if agent.poll is not mine:
                return []
            handed: list[DumpRequest] = []
            while agent.queue:
                waiting = self._waiting[agent.queue.popleft()]
                waiting.delivered = True
                handed.append(waiting.request)
            return handed
        finally:
            if agent.poll is mine:
                agent.poll = None

    def answer(
        self,
        agent_id: str,
        request_id: str,
        *,
        dump: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """``agent_id``'s answer to its request ``request_id``: the dump, or its error.
        ``NotFoundError`` for a request that is not this agent's, not handed out yet, or
        no longer waited for (answered, or its asker gave up)."""
        waiting = self._waiting.get(request_id)
        if waiting is None or waiting.request.agent_id != agent_id or not waiting.delivered:
            raise NotFoundError(
                f"agent {agent_id} has no pending request {request_id!r}: it was answered "
                "already, its asker gave up waiting, or it was not asked of this agent"
            )
        if waiting.answer.done():
            return
        node, what = waiting.request.node_id, _WHAT[waiting.request.kind]
        if error is not None or dump is None:
            why = error or "it sent neither a dump nor an error"
            waiting.answer.set_exception(
                EnvoyError(f"host {waiting.host} could not read the {what} of {node}: {why}")
            )
        else:
            waiting.answer.set_result(dict(dump))


#: what a request asks for, in errors: as a noun, and naming its request
_WHAT = {"config_dump": "config dump", "stats": "stats"}
_REQUEST = {"config_dump": "config-dump", "stats": "stats"}


def _late(waiting: _Waiting, timeout: float) -> str:
    node, host = waiting.request.node_id, waiting.host
    what = _REQUEST[waiting.request.kind]
    if not waiting.delivered:
        return (
            f"host {host} (which runs {node}) did not pick up the {what} request "
            f"within {timeout:g} s: its agent is offline or cannot reach the control "
            "plane; check `gossamer agents list` and the agent's status on that host"
        )
    return (
        f"host {host} (which runs {node}) took the {what} request but did not answer "
        f"within {timeout:g} s; retry with a longer --timeout, or check that Envoy on that host"
    )


def runners_of(model: ModelSnapshot, node_id: str) -> list[Agent]:
    """The active agents that run the proxy ``node_id``, by what the control plane
    registered (never by what the proxy says): a sidecar's Workload's owner; for a gateway,
    every host whose join-token scope names it (replicas each run one)."""
    kind, _, rest = node_id.partition("~")
    namespace, _, name = rest.partition("~")
    if not namespace or not name or "~" in name:
        return []
    if kind == "sidecar":
        workload = model.resources.get(ResourceKey("Workload", namespace, name))
        owner = workload.metadata.labels.get(OWNER_LABEL) if workload is not None else None
        agent = model.resources.get(ResourceKey("Agent", REGISTRY_NAMESPACE, owner or ""))
        return [agent] if isinstance(agent, Agent) and not agent.spec.revoked else []
    if kind != "gateway":
        return []
    gateway = f"{namespace}/{name}"
    agents = [r for k, r in sorted(model.resources.items()) if k.kind == "Agent"]
    return [
        a
        for a in agents
        if isinstance(a, Agent)
        and not a.spec.revoked
        and a.spec.scope is not None
        and a.spec.scope.gateway == gateway
    ]
