"""A control plane that no longer knows an agent (its store lost or replaced, or started with
a mistyped ``--data-dir``) must not take the agent's data plane down (issue 7, R1): the
agent's Envoys keep serving their last configuration, traffic through them keeps
succeeding, and the agent says ``unknown agent`` and retries until the control plane knows
it again. Only a revocation (tested in test_failures.py) stops an agent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gossamer.agent.process import is_running
from gossamer.errors import PollTimeoutError
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp, Settings, create_app
from gossamer.testing.backends import HttpBackend
from gossamer.testing.ports import free_port

from .agents import AgentHandle, Load, agents, run_cli
from .test_agent import HEALTH, _answered_by, _catalog_url, _services

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]

WEB, CATALOG = "default/web-1", "default/catalog-1"


@contextlib.asynccontextmanager
async def _control_plane(data: Path, api: int, xds: int) -> AsyncIterator[ControlPlaneApp]:
    """A control plane on fixed ports, so a restarted one is where the agent looks."""
    settings = Settings(
        data,
        api_addr=("127.0.0.1", api),
        xds_addr=("127.0.0.1", xds),
        xds_tls_addr=("127.0.0.1", 0),  # not xds + 1, which nobody reserved
    )
    async with create_app(settings) as app:
        yield app


def _workload(name: str, service: str, app: HttpBackend, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "service": service,
        "appAddress": app.address[0],
        "appPort": app.address[1],
        "healthCheck": HEALTH,
        **extra,
    }


def _refused(handle: AgentHandle) -> bool:
    """The agent's call was refused (401), or it exited."""
    assert handle.process is not None
    error = handle.status().get("control_plane_error") or ""
    return "refused" in error or "unknown agent" in error or not handle.process.running


def _unknown(handle: AgentHandle) -> bool:
    status = handle.status()
    return status.get("control_plane_refused") == "unknown_agent"


@pytest.mark.parametrize("how", ["store-replaced", "mistyped-data-dir"])
async def test_envoys_keep_serving_when_the_control_plane_forgets_the_agent(
    tmp_path: Path, how: str
) -> None:
    api, xds = free_port(), free_port()
    data = tmp_path / "cp"
    load: Load | None = None
    running: asyncio.Task[None] | None = None
    async with contextlib.AsyncExitStack() as stack:
        web_app = await stack.enter_async_context(HttpBackend("web-app", host="127.0.0.3"))
        catalog_app = await stack.enter_async_context(HttpBackend("catalog-app", "127.0.0.3"))
        handle = AgentHandle(
            None,  # type: ignore[arg-type]  # set below, per control plane
            "host-a",
            "127.0.0.3",
            tmp_path / "a",
            [
                _workload("web-1", "web", web_app, dependencies=[{"service": "catalog"}]),
                _workload("catalog-1", "catalog", catalog_app),
            ],
        )
        await stack.enter_async_context(agents(handle))
        try:
            async with _control_plane(data, api, xds) as first:
                handle.app = first
                await _services(first)
                await handle.join()
                await handle.start()
                await handle.wait_running()
                url = await _catalog_url(handle)
                await wait_until(
                    lambda: _answered_by(url, "catalog-app"),
                    timeout=30,
                    what="web's sidecar reaching catalog's through the mesh",
                )
                pids = handle.envoy_pids()
                load = Load(url, max_seconds=240)
                running = asyncio.create_task(load.run())
                await wait_until(lambda: load.ok >= 20, timeout=30, what="load going")
            # the control plane stopped; it comes back knowing nothing of this agent
            if how == "store-replaced":
                # the documented way to start an empty mesh on purpose: store and marker gone
                for name in os.listdir(data):
                    if name.startswith("gossamer.db"):
                        os.unlink(data / name)
                second_dir = data
            else:
                second_dir = tmp_path / "cp-typo"
            async with _control_plane(second_dir, api, xds) as second:
                await wait_until(
                    lambda: (
                        {p.node_id for p in second.xds.cache.connected()}
                        >= {"sidecar~default~web-1", "sidecar~default~catalog-1"}
                    ),
                    timeout=60,
                    what="both sidecars connected to the new control plane's xDS",
                )
                await wait_until(
                    lambda: _refused(handle), timeout=60, what="the agent's credential refused"
                )
                seen = load.ok
                with contextlib.suppress(PollTimeoutError):  # the assertion below says why
                    await wait_until(
                        lambda: load.ok >= seen + 100, timeout=30, what="traffic after it"
                    )
                assert load.failed == [], f"{len(load.failed)} failed: {load.failed[:3]}"
                assert load.ok >= seen + 100
                assert handle.process is not None and handle.process.running, handle.log()
                assert _unknown(handle), handle.status()
                assert handle.envoy_pids() == pids
                status = handle.status()
                assert status["state"] == "running"
                assert "unknown agent" in status["control_plane_error"]
                assert "keep serving" in status["control_plane_error"]
                code, out = await run_cli("agent", "status", "--state-dir", str(handle.state_dir))
                assert code == 0, out
                assert "unknown agent" in out
                assert "unknown agent" in handle.log()
            if how == "mistyped-data-dir":
                # the right data dir again: the agent's retries succeed, it re-registers
                async with _control_plane(data, api, xds):
                    await wait_until(
                        lambda: handle.status().get("control_plane_error") is None,
                        timeout=60,
                        what="the agent known again",
                    )
                    assert handle.status().get("control_plane_refused") is None
                    seen = load.ok
                    await wait_until(
                        lambda: load.ok >= seen + 50, timeout=60, what="traffic afterwards"
                    )
            assert load.failed == [], load.failed[:5]
            assert handle.envoy_pids() == pids
            assert all(is_running(r.pid, r.start_time) for r in handle.state.envoys().values())
        finally:
            if load is not None and running is not None:
                load.stop()
                await running
        assert await handle.signal(signal.SIGTERM) == 0, handle.log()
