"""A control plane that no longer knows an agent (its store lost or replaced, or started with
a mistyped ``--data-dir``, which is also a new CA) must not take the agent's data plane down
(issue 7, R1): the agent's Envoys keep serving their last configuration, traffic through
them keeps succeeding, the agent keeps its last good identity and says why it is not heard
(``unknown agent``; a control plane on a new CA fails verification and is sent nothing), and
retries until the control plane knows it again. Only a revocation (tested in
test_failures.py) stops an agent.

Both ways a sidecar takes xDS: mTLS with its workload certificate at the address the
control plane advertised at join (the default, ``--xds-tls required``), where the forgetful
control plane refuses it (no Workload registered, or a certificate of another CA); and
plaintext (``--xds-tls optional``, joined with ``--xds``), where it is served and is sent
nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gossamer.agent.process import is_running
from gossamer.errors import PollTimeoutError
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp, create_app
from gossamer.server.settings import Settings
from gossamer.testing.backends import HttpBackend
from gossamer.testing.ports import free_port
from gossamer.xds.auth import XdsTlsMode

from .agents import PACED, AgentHandle, Load, agents, run_cli
from .test_agent import HEALTH, _answered_by, _catalog_url, _services

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]

WEB, CATALOG = "default/web-1", "default/catalog-1"
SIDECARS = {"sidecar~default~web-1", "sidecar~default~catalog-1"}
#: the apps answer from this test's process, which also runs the control plane and the
#: load: test_agent's 200 ms check can fail twice in a row on a busy machine, and an
#: ``unhealthy`` published just before the control plane stops is what every caller keeps
#: (503 no healthy upstream) until a control plane that knows the agent is back
STEADY_HEALTH = {**HEALTH, "interval": "1s", "timeout": "1s", "unhealthyThreshold": 5}
#: what each sidecar's Envoy counts when it refuses the xDS server's certificate
XDS_VERIFY_FAILED = "cluster.gossamer-xds.ssl.fail_verify_error"


@contextlib.asynccontextmanager
async def _control_plane(
    data: Path, api: int, xds: int, mode: XdsTlsMode
) -> AsyncIterator[ControlPlaneApp]:
    """A control plane on fixed ports, so a restarted one is where the agent and its
    sidecars look (``required``: mTLS xDS on ``xds``; ``optional``: plaintext there)."""
    settings = Settings(
        data, api_addr=("127.0.0.1", api), xds_addr=("127.0.0.1", xds), xds_tls=mode
    )
    async with create_app(settings) as app:
        yield app


def _workload(name: str, service: str, app: HttpBackend, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "service": service,
        "appAddress": app.address[0],
        "appPort": app.address[1],
        "healthCheck": STEADY_HEALTH,
        **extra,
    }


def _not_heard(handle: AgentHandle, how: str) -> bool:
    """The agent's calls to the new control plane fail as they should (or it exited, which
    the test then reports): 401 unknown agent, or (a new CA) failed verification."""
    assert handle.process is not None
    if not handle.process.running:
        return True
    if how == "store-replaced":
        return _unknown(handle)
    return "failed verification" in (handle.status().get("control_plane_error") or "")


def _identities(handle: AgentHandle) -> dict[str, Any]:
    """Per service, the serial of the certificate the agent serves; per workload, the
    identity its Envoy ACKed over SDS (versioned by that serial)."""
    status = handle.status()
    served = {k: v.get("serial") for k, v in status["identities"].items()}
    acked = {k: ((w.get("sds") or {}).get("acked") or {}).get("identity")
             for k, w in status["workloads"].items()}  # fmt: skip
    return {"served": served, "acked": acked}


def _held(handle: AgentHandle) -> dict[str, Any] | None:
    """``_identities`` once each Envoy ACKed the certificate its agent serves now."""
    found = _identities(handle)
    served = found["served"]
    wanted = {WEB: served.get("default/web"), CATALOG: served.get("default/catalog")}
    return found if None not in wanted.values() and found["acked"] == wanted else None


async def _stat(admin: str, name: str) -> int:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        r = await client.get(f"http://{admin}/stats", params={"filter": f"^{name}$"})
    for line in r.text.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


async def _verify_failures(handle: AgentHandle) -> dict[str, int]:
    return {k: await _stat(r.admin, XDS_VERIFY_FAILED) for k, r in handle.state.envoys().items()}


def _refused_nodes(caplog: pytest.LogCaptureFixture, since: int) -> set[str]:
    """The sidecars the control plane refused because no Workload of theirs is registered."""
    out = set()
    for record in caplog.records[since:]:
        text = record.getMessage()
        for node in SIDECARS:
            name = node.rsplit("~", 1)[1]
            if f"may not subscribe as {node}: no Workload default/{name} is registered" in text:
                out.add(node)
    return out


def _unknown(handle: AgentHandle) -> bool:
    status = handle.status()
    return status.get("control_plane_refused") == "unknown_agent"


# (plaintext xDS with a mistyped data dir adds nothing the other three do not cover: its
# sidecars are served nothing as with the store replaced, its agent fails verification and
# comes back as over mTLS; it took 80 s of the suite's 20 minutes)
@pytest.mark.parametrize(
    ("how", "xds_mode"),
    [
        pytest.param("store-replaced", "required", id="mtls-xds-store-replaced"),
        pytest.param("mistyped-data-dir", "required", id="mtls-xds-mistyped-data-dir"),
        pytest.param("store-replaced", "optional", id="plaintext-xds-store-replaced"),
    ],
)
async def test_envoys_keep_serving_when_the_control_plane_forgets_the_agent(
    tmp_path: Path, how: str, xds_mode: XdsTlsMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gossamer.xds.server")
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
            plaintext_xds=xds_mode == "optional",
        )
        await stack.enter_async_context(agents(handle))
        try:
            async with _control_plane(data, api, xds, xds_mode) as first:
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
                if xds_mode == "required":
                    assert first.xds.port == 0 and first.xds.tls_port == xds  # mTLS only
                pids = handle.envoy_pids()
                # (~200 requests/s: bounded by time, never by count, through every phase)
                load = Load(url, max_requests=200_000, max_seconds=300, pace=PACED)
                running = asyncio.create_task(load.run())
                await wait_until(lambda: load.ok >= 20, timeout=30, what="load going")
                identities = await wait_until(
                    lambda: _held(handle),
                    timeout=30,
                    what="each Envoy holding its service's certificate",
                )
            # the control plane stopped; it comes back knowing nothing of this agent
            if how == "store-replaced":
                # the documented way to start an empty mesh on purpose: store and marker gone
                for name in os.listdir(data):
                    if name.startswith("gossamer.db"):
                        os.unlink(data / name)
                second_dir = data
            else:
                second_dir = tmp_path / "cp-typo"  # (a new data dir: a new CA)
            failed_before = await _verify_failures(handle)
            logged = len(caplog.records)
            async with _control_plane(second_dir, api, xds, xds_mode) as second:
                if xds_mode == "optional":  # anonymous sidecars are served, and sent nothing
                    await wait_until(
                        lambda: {p.node_id for p in second.xds.cache.connected()} >= SIDECARS,
                        timeout=60,
                        what="both sidecars connected to the new control plane's xDS",
                    )
                elif how == "store-replaced":  # the same CA: refused as no Workload's
                    await wait_until(
                        lambda: _refused_nodes(caplog, logged) >= SIDECARS,
                        timeout=60,
                        what="both sidecars refused by the new control plane's xDS",
                    )
                else:  # a new CA: each Envoy refuses the new server's certificate

                    async def refused_certificate() -> bool:
                        now = await _verify_failures(handle)
                        return all(now[k] > failed_before[k] for k in (WEB, CATALOG))

                    await wait_until(
                        refused_certificate,
                        timeout=60,
                        what="both sidecars refusing the certificate of the new control plane",
                    )
                await wait_until(
                    lambda: _not_heard(handle, how),
                    timeout=60,
                    what="the agent's calls failing as they should",
                )
                seen = load.ok
                with contextlib.suppress(PollTimeoutError):  # the assertion below says why
                    await wait_until(
                        lambda: load.ok >= seen + 100, timeout=30, what="traffic after it"
                    )
                assert load.failed == [], f"{len(load.failed)} failed: {load.failed[:3]}"
                assert load.ok >= seen + 100
                assert handle.process is not None and handle.process.running, handle.log()
                assert handle.envoy_pids() == pids
                # the last good identity is kept and still served (renewals fail meanwhile)
                assert _identities(handle) == identities, handle.status()["identities"]
                status = handle.status()
                assert status["state"] == "running"
                assert "keep serving" in status["control_plane_error"]
                if how == "store-replaced":
                    assert _unknown(handle), status
                    assert "unknown agent" in status["control_plane_error"]
                    expected = "unknown agent"
                else:  # nothing secret is sent to a control plane the host cannot verify
                    assert status.get("control_plane_refused") is None, status
                    assert "nothing secret was sent" in status["control_plane_error"]
                    expected = "failed verification"
                code, out = await run_cli("agent", "status", "--state-dir", str(handle.state_dir))
                assert code == 0, out
                assert expected in out
                assert expected in handle.log()
                if xds_mode == "optional":  # it served them nothing: they were never refused
                    assert not second.xds.cache.get("sidecar~default~web-1")
            if how == "mistyped-data-dir":
                # the right data dir again: the agent's retries succeed, it re-registers
                async with _control_plane(data, api, xds, xds_mode) as third:
                    await wait_until(
                        lambda: handle.status().get("control_plane_error") is None,
                        timeout=60,
                        what="the agent known again",
                    )
                    assert handle.status().get("control_plane_refused") is None
                    await wait_until(
                        lambda: {p.node_id for p in third.xds.cache.connected()} >= SIDECARS,
                        timeout=60,
                        what="both sidecars back on the control plane's xDS",
                    )
                    seen = load.ok
                    assert running is not None and not running.done(), "the load ended early"
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
