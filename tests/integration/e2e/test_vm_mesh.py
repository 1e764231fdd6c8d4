"""The whole mesh without Kubernetes, under continuous load (issue 3, "Done when").

A control plane; three simulated hosts, each with a real ``gossamer agent`` process and real
Envoy sidecars: service A on 127.0.0.3, two instances of service B on 127.0.0.4 and
127.0.0.5; a real ``gossamer gateway`` in front of A. A is a tiny real app that calls B at
the stable local address ``gossamer agent env`` gives it. A bounded load of CONCURRENCY
workers runs through the ingress for the whole scenario and every request's status is kept;
each step counts the failures that completed in its own window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent.agents import GOSSAMER, PACED, AgentHandle, agents, run_cli
from agent.test_agent import HEALTH, _health

from gossamer.agent.process import is_running
from gossamer.envoy.process import ManagedProcess
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

from .apps import AppProcess
from .load import ConcurrentLoad

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(900),
]

A_HOST, B1_HOST, B2_HOST = "127.0.0.3", "127.0.0.4", "127.0.0.5"
CONCURRENCY = 4
#: successful requests each step waits for after its event, to see where traffic goes
SETTLE = 60


def _mesh(gateway_port: int) -> str:
    return f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: a}}
spec: {{ports: [{{name: http, port: {free_port()}}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: b}}
spec: {{ports: [{{name: http, port: {free_port()}}}]}}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: {gateway_port}}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: edge}}
spec:
  gateways: [edge]
  rules: [{{destinations: [{{service: a}}]}}]
"""


def _workload(name: str, service: str, app: AppProcess, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "service": service,
        "appAddress": app.host,
        "appPort": app.port,
        "healthCheck": HEALTH,
        **extra,
    }


async def _join_with(app: ControlPlaneApp, token: str, state_dir: Path, host: str) -> str:
    code, out = await run_cli(
        "agent", "join", "--server", app.api_url, "--token", token,
        "--state-dir", str(state_dir), "--host", host,
        "--xds", f"{app.xds_addr[0]}:{app.xds_addr[1]}",
    )  # fmt: skip
    return f"{code} {out}"


@contextlib.asynccontextmanager
async def _gateway(app: ControlPlaneApp, workdir: Path) -> AsyncIterator[ManagedProcess]:
    gateway = ManagedProcess(
        [
            GOSSAMER, "gateway", "--name", "edge", "--server", app.api_url,
            "--xds-addr", f"{app.xds_addr[0]}:{app.xds_addr[1]}",
            "--workdir", str(workdir), "--drain-seconds", "1", "--concurrency", "1",
        ],
        log_path=workdir.parent / "gateway.log",
        name="gateway edge",
    )  # fmt: skip
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop(30)


async def _sidecar_host_flags(admin: str, address: str) -> str | None:
    """Health flags of ``address`` in service b's cluster of the Envoy at ``admin``
    (None: that Envoy has no such endpoint)."""
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        text = (await client.get(f"http://{admin}/clusters")).text
    for line in text.splitlines():
        if "default/b" in line and f"::{address}::health_flags::" in line:
            return line.rsplit("::", 1)[1]
    return None


async def test_vm_mesh_under_load(tmp_path: Path) -> None:
    gateway_port = free_port()
    async with (
        running_control_plane(tmp_path / "cp") as app,
        contextlib.AsyncExitStack() as stack,
    ):
        await apply_yaml(app, _mesh(gateway_port), wait=False)
        b1_app = AppProcess("b-1", B1_HOST, tmp_path)
        b2_app = AppProcess("b-2", B2_HOST, tmp_path)
        a_app = AppProcess("a-1", A_HOST, tmp_path)
        for p in (b1_app, b2_app, a_app):
            stack.push_async_callback(p.stop)
        await b1_app.start()
        await b2_app.start()
        a = AgentHandle(
            app, "host-a", A_HOST, tmp_path / "a",
            [_workload("a-1", "a", a_app, dependencies=[{"service": "b"}])],
        )  # fmt: skip
        b1 = AgentHandle(app, "host-b1", B1_HOST, tmp_path / "b1", [_workload("b-1", "b", b1_app)])
        b2 = AgentHandle(app, "host-b2", B2_HOST, tmp_path / "b2", [_workload("b-2", "b", b2_app)])
        await stack.enter_async_context(agents(a, b1, b2))

        # (f) a join token is single-use: host-a joins with one from `gossamer token create`;
        # the same token is then refused and nothing is written
        code, out = await run_cli(
            "token", "create", "--server", app.api_url, "-o", "json", "--service", "a"
        )
        assert code == 0, out
        token = str(json.loads(out)["token"])
        joined = await _join_with(app, token, a.state_dir, "host-a")
        assert joined.startswith("0 "), joined
        reused = await _join_with(app, token, tmp_path / "intruder", "host-x")
        assert reused.startswith("1 ") and "already used" in reused, reused
        assert not (tmp_path / "intruder" / "credential.json").exists()

        for h in (b1, b2):
            await h.join()
        for h in (a, b1, b2):
            await h.start()
        for h in (a, b1, b2):
            await h.wait_running()
        # A calls B by the stable local address its agent publishes
        env = await a.env()
        a_app.upstream = env["B_ADDR"]
        await a_app.start()
        gateway = await stack.enter_async_context(_gateway(app, tmp_path / "gw"))

        failures: dict[str, int] = {}  # failed requests by step, printed at the end
        url = f"http://127.0.0.1:{gateway_port}/"
        load = ConcurrentLoad(url, concurrency=CONCURRENCY, pace=PACED)
        loop = asyncio.create_task(load.run())
        stack.push_async_callback(lambda: loop)
        stack.callback(load.stop)

        async def served(mark: int, *backends: str, n: int = 5) -> bool:
            assert not loop.done(), "the load loop ended early"
            assert gateway.running, gateway.log_tail()
            seen = load.served_by(mark)
            return all(seen.get(b, 0) >= n for b in backends)

        async def settle(mark: int, what: str) -> None:
            await wait_until(
                lambda: load.ok_since(mark) >= SETTLE, timeout=60, what=f"load after {what}"
            )

        # (a) requests through the ingress reach A, which reaches both instances of B
        await wait_until(
            lambda: served(0, "b-1", "b-2"), timeout=90, what="load reaching b-1 and b-2 via A"
        )

        # (c) an Envoy is SIGKILLed: its agent starts a new one and traffic comes back to it
        mark = load.mark()
        first = b1.envoy_pids()["default/b-1"]
        os.kill(first, signal.SIGKILL)
        await wait_until(
            lambda: b1.envoy_pids().get("default/b-1") not in (None, first),
            timeout=60, what="a new Envoy for b-1",
        )  # fmt: skip
        restarted = load.mark()
        await wait_until(lambda: served(restarted, "b-1"), timeout=60, what="b-1 served again")
        assert b1.status()["workloads"]["default/b-1"]["envoy"]["restarts"] >= 1
        failures["(c) Envoy SIGKILL"] = len(load.failed(mark))
        assert len(load.failed(mark)) <= CONCURRENCY, load.failed(mark)

        # (d) restarting A's agent (SIGHUP, then `agent run` again): zero failed requests
        mark = load.mark()
        a_envoy = a.envoy_pids()["default/a-1"]
        assert await a.signal(signal.SIGHUP) == 0, a.log()
        await a.start()
        status = await a.wait_running()
        await settle(mark, "the agent restart")
        assert status["workloads"]["default/a-1"]["envoy"]["state"] == "adopted"
        assert a.envoy_pids()["default/a-1"] == a_envoy
        failures["(d) agent restart"] = len(load.failed(mark))
        assert load.failed(mark) == []

        # (b) one of B's two app instances is killed: at most the requests in flight fail,
        # then traffic goes to the other
        mark = load.mark()
        await b1_app.kill()
        await wait_until(
            lambda: _is(app, "b-1", "unhealthy"), timeout=60, what="b-1 unhealthy in the store"
        )
        after = load.mark()
        await settle(after, "b-1's app died")
        assert set(load.served_by(after)) == {"b-2"}, load.served_by(after)
        failures["(b) app SIGKILL"] = len(load.failed(mark))
        assert len(load.failed(mark)) <= CONCURRENCY, load.failed(mark)
        await b1_app.start()  # back on its port: healthy again, back in rotation
        back = load.mark()
        await wait_until(
            lambda: served(back, "b-1", "b-2"), timeout=60, what="b-1 back in rotation"
        )

        # (e) SIGTERM on B2's agent: zero failed requests; its endpoint leaves the control
        # plane and A's sidecar before the agent exits; no Envoy outlives it
        a_admin = a.status()["workloads"]["default/a-1"]["envoy"]["admin"]
        b2_inbound = b2.status()["workloads"]["default/b-2"]["inbound"]
        assert await _sidecar_host_flags(a_admin, b2_inbound) == "healthy"
        b2_envoy = b2.state.envoys()["default/b-2"]
        gone_before_exit: list[str] = []

        async def watch_gone() -> None:
            assert b2.process is not None
            while b2.process.running:
                health = await _health(app, "b-2")
                flags = await _sidecar_host_flags(a_admin, b2_inbound)
                if health in (None, "draining") and flags != "healthy" and b2.process.running:
                    gone_before_exit.append(f"store: {health}, A's sidecar: {flags}")
                    return
                await asyncio.sleep(0.02)

        mark = load.mark()
        watcher = asyncio.create_task(watch_gone())
        exit_code = await b2.signal(signal.SIGTERM)
        await watcher
        after = load.mark()
        await settle(after, "b-2's agent stopped")
        assert exit_code == 0, b2.log()
        assert gone_before_exit, "b-2's endpoint was still in the mesh when its agent exited"
        assert not is_running(b2_envoy.pid, b2_envoy.start_time), "orphaned Envoy"
        assert b2.status()["state"] == "stopped"
        assert set(load.served_by(after)) == {"b-1"}, load.served_by(after)
        failures["(e) agent SIGTERM"] = len(load.failed(mark))
        assert load.failed(mark) == []

        await b2.start()  # the same host comes back (still joined)
        await b2.wait_running()
        back = load.mark()
        await wait_until(
            lambda: served(back, "b-1", "b-2"), timeout=60, what="b-2 back in rotation"
        )

        # (g) `gossamer agents revoke host-b1`: its Workload leaves the mesh, traffic shifts
        # to b-2; the agent finds its credential revoked, stops its Envoy and exits 1
        mark = load.mark()
        b1_envoy = b1.state.envoys()["default/b-1"]
        code, out = await run_cli("agents", "revoke", "host-b1", "--server", app.api_url, "--wait")
        assert code == 0, out
        assert await _health(app, "b-1") is None
        after = load.mark()
        await settle(after, "revoking host-b1")
        assert set(load.served_by(after)) == {"b-2"}, load.served_by(after)
        failures["(g) revoke"] = len(load.failed(mark))
        assert len(load.failed(mark)) <= CONCURRENCY, load.failed(mark)
        assert b1.process is not None
        assert await b1.process.wait(60) == 1, b1.log()
        assert "revoked" in b1.log()
        assert not is_running(b1_envoy.pid, b1_envoy.start_time)

        load.stop()
        await loop
        print(f"{len(load.outcomes)} requests, failed by step: {failures}")
        assert len(load.outcomes) < load.max_requests, "the load hit its bound: raise it"


async def _is(app: ControlPlaneApp, name: str, health: str) -> bool:
    return await _health(app, name) == health
