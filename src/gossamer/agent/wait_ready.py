"""``gossamer agent wait-ready``: return once what an agent (or a gateway) on a state dir
runs is reachable through the mesh.

Started in the background (``gossamer agent run ... &``), an agent needs a moment before a
request through it, or through a gateway in front of it, can succeed: it registers its
workloads, starts their Envoys, health-checks the apps, and every proxy routing to them
must ACK the new endpoints. This waits for all of that: first, locally, for a running
process on the state dir that holds a credential (and, for an agent, has registered its
workloads); then it asks the control plane (``GET /v1/agents/{id}/ready``) to wait until the
workloads are healthy and held by every proxy that routes to them — for a gateway's state
dir, until the gateway's own Envoy ACKed its newest config.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossamer.agent.connect import open_registry
from gossamer.agent.process import start_time
from gossamer.agent.state import CREDENTIAL, StateDir, read_json
from gossamer.errors import PollTimeoutError
from gossamer.polling import wait_until


@dataclass(frozen=True, slots=True)
class Ready:
    ready: bool
    #: node ids of the proxies that ACKed (the host's own, and those routing to it)
    acked_by: list[str] = field(default_factory=list)
    #: what was still missing at the deadline
    waiting: list[str] = field(default_factory=list)


def _local(state: StateDir) -> str | None:
    """What the process on ``state`` still lacks before the control plane can be asked
    (None: nothing)."""
    status = state.status()
    if status is None:
        return f"no agent or gateway has started on {state.path} (no status.json)"
    pid = int(status.get("pid") or 0)
    if pid <= 0 or start_time(pid) is None:
        return (
            f"the process on {state.path} (pid {pid}) is not running; its last state: "
            f"{status.get('state')}{': ' + str(status['error']) if status.get('error') else ''}"
        )
    if read_json(state.path / CREDENTIAL) is None:
        return f"{state.path} holds no credential yet (it joins first)"
    if status.get("control_plane_error"):
        return f"its control plane calls fail: {status['control_plane_error']}"
    if "registered" in status and status.get("registered") is not True:
        return "the agent has not registered its workloads yet"
    return None


async def wait_ready(state_dir: Path, within: float) -> Ready:
    """Wait at most ``within`` s in all; ``Ready(False, ..., waiting)`` if it passes."""
    state = StateDir(state_dir)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    lacking: list[str | None] = [None]

    async def started() -> bool:
        lacking[0] = await asyncio.to_thread(_local, state)
        return lacking[0] is None

    try:
        await wait_until(started, timeout=within, interval=0.1, what="the agent to start")
    except PollTimeoutError:
        return Ready(False, waiting=[lacking[0] or "the agent did not start"])
    cred = state.credential()
    async with open_registry(cred) as api:
        answer: dict[str, Any] = await api.ready(max(0.1, deadline - loop.time()))
    return Ready(
        answer.get("ready") is True,
        [str(n) for n in answer.get("ackedBy") or []],
        [str(w) for w in answer.get("waiting") or []],
    )
