"""The host's side of config dumps (``agent.dumps.HostRequests``): it answers only for its
own Envoys, at the admin address of its own record, caps the size, and its loop survives a
control plane that is not there. Against a real API (ASGI) over a real ControlPlane."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import prometheus_client
import pytest
import pytest_asyncio

from gossamer.agent.client import RegistryClient
from gossamer.agent.dumps import HostRequests
from gossamer.api.app import create_api
from gossamer.controlplane.plane import ControlPlane
from gossamer.model import parse_manifest
from gossamer.polling import Backoff, wait_until
from gossamer.registry import Registry
from gossamer.store.memory import MemoryStore
from gossamer.testing import HttpBackend, free_port
from gossamer.testing.mesh import service, workload
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor

pytestmark = pytest.mark.asyncio

WEB = "sidecar~default~web-1"
FAST = Backoff(initial=0.01, maximum=0.05)


def request(node_id: str = WEB, **extra: Any) -> dict[str, Any]:
    return {"id": "r1", "kind": "config_dump", "nodeId": node_id, "includeEds": True, **extra}


def nowhere() -> RegistryClient:
    """A client of a control plane that is not there (a closed loopback port)."""
    return RegistryClient(f"http://127.0.0.1:{free_port()}", "a1", "secret")


async def test_only_its_own_envoys_are_read() -> None:
    async with HttpBackend("tripwire") as tripwire, nowhere() as api:
        admin = f"{tripwire.address[0]}:{tripwire.address[1]}"
        host = HostRequests(api, lambda: {WEB: admin})
        other = await host.read(request("sidecar~default~other-1"))
        assert other == {
            "error": f"this host runs no Envoy 'sidecar~default~other-1' (it runs: {WEB})"
        }
        odd = await host.read(request(kind="shell"))
        assert odd == {"error": "this host does not know requests of kind 'shell'"}
        assert tripwire.requests == 0


async def test_a_dump_over_the_cap_and_an_admin_that_does_not_answer_are_error_lines() -> None:
    async with HttpBackend("admin") as admin, nowhere() as api:
        address = f"{admin.address[0]}:{admin.address[1]}"
        capped = HostRequests(api, lambda: {WEB: address}, max_bytes=10)
        answer = await capped.read(request())
        assert admin.requests_by_path["/config_dump"] == 1
        assert answer["error"].startswith(f"the config dump of {WEB} is ")
        assert answer["error"].endswith(
            "bytes, over this host's limit of 10; ask for one part (proxy-config --type)"
        )
        closed = HostRequests(api, lambda: {WEB: f"127.0.0.1:{free_port()}"})
        error = (await closed.read(request()))["error"]
        assert error.startswith(f"proxy {WEB}: admin GET /config_dump at 127.0.0.1:")


async def test_the_loop_outlives_a_control_plane_that_is_not_there() -> None:
    async with nowhere() as api:
        host = HostRequests(api, dict, retry=FAST)
        task = asyncio.create_task(host.run())
        await wait_until(lambda: host.failed_polls >= 5 or task.done(), timeout=10)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest_asyncio.fixture
async def registry() -> AsyncIterator[Registry]:
    store = MemoryStore()
    plane = ControlPlane(store, SnapshotCache(), XdsMonitor(prometheus_client.CollectorRegistry()))
    try:
        registry = Registry(plane)
        await plane.load()
        await plane.apply([parse_manifest(service("web", 8080))])
        yield registry
    finally:
        await store.close()


async def test_a_request_through_the_loop_reaches_the_operator(registry: Registry) -> None:
    api_app = create_api(
        registry.plane, metrics=prometheus_client.CollectorRegistry(), agents=registry
    )
    transport = httpx.ASGITransport(app=api_app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://api") as operator,
        HttpBackend("admin") as admin,
    ):
        token = await operator.post("/v1/tokens", json={"scope": {"services": ["web"]}})
        joined = await operator.post(
            "/v1/agents/join", json={"token": token.json()["token"], "host": "vm-1"}
        )
        agent_id, credential = joined.json()["agentId"], joined.json()["credential"]
        address = f"{admin.address[0]}:{admin.address[1]}"
        async with RegistryClient("http://api", agent_id, credential, transport=transport) as api:
            web = workload("web-1", "web", "127.0.0.2", 15001, 8080)
            await api.put_workloads([{**web, "spec": {**web["spec"], "host": "vm-1"}}])
            host = HostRequests(api, lambda: {WEB: address}, wait=5)
            async with asyncio.TaskGroup() as tg:
                loop = tg.create_task(host.run())
                r = await operator.get(f"/v1/proxies/{WEB}/config", params={"timeout": 5})
                loop.cancel()
    assert r.status_code == 200, r.text
    assert r.json()["backend"] == "admin"  # what the admin address answered, as the dump
    assert admin.requests_by_path["/config_dump"] == 1
    assert host.answered == 1
