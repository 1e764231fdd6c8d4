"""The host's side of "Requests to the host" (docs/agent-protocol.md): one long-poll to the
control plane, through which it asks this host for its own Envoys' config dumps.

The control plane never connects to an Envoy (issue 9, "No request forgery"): the host
reads the admin API of an Envoy it runs, at the address of its own record, and sends the
answer back. From the control plane it takes only a request id and a node id, which must
be one of its own Envoys; anything else is answered with an error line. Used by the agent
(``agent.runner``) and the gateway host alike (``HostRequests`` with that host's Envoys).

The loop never stops its host: a control plane that is down, slow, refusing or of an older
version is retried with back-off (a revoked credential stops the agent through its
registration loop, not here).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gossamer.agent.client import RegistryClient
from gossamer.agent.state import EnvoyRecord
from gossamer.agent.workload import WorkloadRunner
from gossamer.envoy.admin import EnvoyAdmin
from gossamer.errors import GossamerError, RejectedError
from gossamer.polling import Backoff

log = logging.getLogger(__name__)

#: how long one poll waits for a request before the control plane answers "none"
POLL_WAIT_S = 30.0
#: after a failed poll (control plane down, restarting, refusing)
POLL_RETRY = Backoff(initial=0.2, maximum=5.0)
#: a config dump larger than this (as JSON) is answered with an error instead
MAX_DUMP_BYTES = 8 * 1024 * 1024
#: what a request id from the control plane may look like (it goes into a URL path)
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: a stat-name prefix a ``stats`` request may ask for (the characters of the names
#: Gossamer gives clusters and listeners), and how many at most
_STAT_PREFIX = re.compile(r"[A-Za-z0-9_.|/:~%,=-]{1,512}")
MAX_STAT_PREFIXES = 64

#: node id -> admin address (``127.0.0.1:PORT``) of each Envoy this host runs, from its
#: own records; asked afresh for every request (an Envoy restarts on another port)
Admins = Callable[[], Mapping[str, str]]


class HostRequests:
    """``await HostRequests(api, admins).run()``: poll, answer, forever."""

    def __init__(
        self,
        api: RegistryClient,
        admins: Admins,
        *,
        wait: float = POLL_WAIT_S,
        retry: Backoff = POLL_RETRY,
        max_bytes: int = MAX_DUMP_BYTES,
    ) -> None:
        self._api = api
        self._admins = admins
        self._wait = wait
        self._retry = retry
        self._max_bytes = max_bytes
        #: requests answered (with a dump or an error line), and polls that failed
        self.answered = 0
        self.failed_polls = 0

    async def run(self) -> None:
        retries = self._retry.retries()
        async with asyncio.TaskGroup() as tg:
            while True:
                try:
                    requests = await self._api.host_requests(self._wait)
                except Exception as e:  # whatever it is, the host keeps serving
                    self.failed_polls += 1
                    delay = retries.next()
                    level = logging.DEBUG if isinstance(e, GossamerError) else logging.WARNING
                    if isinstance(e, RejectedError) and e.status == 404:
                        level = logging.WARNING  # a control plane without this call
                    log.log(level, "requests long-poll: %s (again in %.1f s)", e, delay)
                    await asyncio.sleep(delay)
                    continue
                retries.reset()
                for request in requests:
                    tg.create_task(self._answer(request))

    async def _answer(self, request: Mapping[str, Any]) -> None:
        request_id = request.get("id")
        if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
            log.warning("requests long-poll: ignoring a request with id %r", request_id)
            return
        answer = await self.read(request)
        try:
            await self._api.answer_request(request_id, answer)
        except GossamerError as e:
            log.warning("could not answer request %s: %s", request_id, e)
            return
        self.answered += 1

    async def read(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The answer to one request: ``{"dump": ...}`` or ``{"error": "one line"}``."""
        node_id = request.get("nodeId")
        if request.get("kind") not in ("config_dump", "stats"):
            return {"error": f"this host does not know requests of kind {request.get('kind')!r}"}
        admins = self._admins()
        admin = admins.get(node_id) if isinstance(node_id, str) else None
        if admin is None:
            runs = ", ".join(sorted(admins)) or "none"
            return {"error": f"this host runs no Envoy {node_id!r} (it runs: {runs})"}
        if request.get("kind") == "stats":
            return await self._stats(admin, str(node_id), request.get("prefixes"))
        try:
            async with EnvoyAdmin(admin, name=f"proxy {node_id}") as envoy:
                dump = await envoy.config_dump(include_eds=request.get("includeEds") is True)
        except GossamerError as e:
            return {"error": str(e)}
        size = len(json.dumps(dump, separators=(",", ":")))
        if size > self._max_bytes:
            return {
                "error": f"the config dump of {node_id} is {size} bytes, over this host's "
                f"limit of {self._max_bytes}; ask for one part (proxy-config --type)"
            }
        return {"dump": dump}

    async def _stats(self, admin: str, node_id: str, prefixes: object) -> dict[str, Any]:
        """The counters and gauges of one of this host's Envoys whose names start with one
        of ``prefixes``: plain stat names of the mesh's own characters, turned into the
        admin API's ``filter`` here (the control plane sends no pattern, no path, no URL)."""
        if (
            not isinstance(prefixes, list)
            or not 0 < len(prefixes) <= MAX_STAT_PREFIXES
            or not all(isinstance(p, str) and _STAT_PREFIX.fullmatch(p) for p in prefixes)
        ):
            return {
                "error": f"a stats request needs 1..{MAX_STAT_PREFIXES} stat-name prefixes of "
                "letters, digits and _.|/:~%,=- (up to 512 each)"
            }
        pattern = "^(" + "|".join(re.sub(r"([.|])", r"\\\1", p) for p in prefixes) + ")"
        try:
            async with EnvoyAdmin(admin, name=f"proxy {node_id}") as envoy:
                found = await envoy.stats(pattern)
        except GossamerError as e:
            return {"error": str(e)}
        stats = {k: v for k, v in found.items() if k.startswith(tuple(prefixes))}
        size = len(json.dumps(stats, separators=(",", ":")))
        if size > self._max_bytes:
            return {"error": f"the stats of {node_id} are {size} bytes, over {self._max_bytes}"}
        return {"dump": {"stats": stats}}


def agent_admins(workloads: Iterable[WorkloadRunner], records: Mapping[str, EnvoyRecord]) -> Admins:
    """The agent's Envoys: each workload's node id and the admin address in its record."""

    def admins() -> dict[str, str]:
        return {w.bootstrap.node.id: records[w.key].admin for w in workloads if w.key in records}

    return admins


async def agent_requests(
    api: RegistryClient, workloads: Iterable[WorkloadRunner], records: Mapping[str, EnvoyRecord]
) -> None:
    """The agent's long-poll, answering for its workloads' Envoys (``agent.runner``)."""
    await HostRequests(api, agent_admins(workloads, records)).run()
