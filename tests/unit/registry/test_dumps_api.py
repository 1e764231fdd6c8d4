"""``proxy-config`` through the host's long-poll, over HTTP (ASGI) against a real
ControlPlane and Registry; the test plays the agents with the protocol's own calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import prometheus_client
import pytest
import pytest_asyncio

from gossamer.api.app import create_api
from gossamer.registry import Registry

from .mesh import workload
from .test_api import join, one_error

pytestmark = pytest.mark.asyncio

DUMP: dict[str, Any] = {
    "configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {}},
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "dynamic_active_clusters": [{"cluster": {"name": "default/cart/http"}}],
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "dynamic_listeners": [{"name": "inbound|http|8080"}],
        },
    ]
}
WEB = "sidecar~default~web-1"


@pytest_asyncio.fixture
async def client(registry: Registry) -> AsyncIterator[httpx.AsyncClient]:
    api = create_api(registry.plane, metrics=prometheus_client.CollectorRegistry(), agents=registry)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://api"
    ) as c:
        yield c


async def host(client: httpx.AsyncClient, name: str, *workloads: str) -> tuple[str, dict[str, str]]:
    agent_id, auth = await join(client, name)
    body = {"workloads": [workload(w, host=name) for w in workloads]}
    put = await client.put(f"/v1/agents/{agent_id}/workloads", json=body, headers=auth)
    assert put.status_code == 200, put.text
    return agent_id, auth


async def test_the_runner_gets_the_request_and_its_answer_is_the_config(
    client: httpx.AsyncClient,
) -> None:
    a, a_auth = await host(client, "vm-1", "web-1")
    b, b_auth = await host(client, "vm-2", "web-2")
    poll_a = asyncio.create_task(client.get(f"/v1/agents/{a}/requests", headers=a_auth))
    poll_b = asyncio.create_task(
        client.get(f"/v1/agents/{b}/requests", params={"timeout": 0.5}, headers=b_auth)
    )
    ask = asyncio.create_task(client.get(f"/v1/proxies/{WEB}/config", params={"type": "listeners"}))
    polled = await poll_a
    assert polled.status_code == 200, polled.text
    [request] = polled.json()["requests"]
    assert request["nodeId"] == WEB and request["kind"] == "config_dump"
    assert request["includeEds"] is False  # only listeners were asked for
    assert (await poll_b).json() == {"requests": []}  # not vm-2's proxy

    # another host cannot answer with vm-1's request id
    forged = await client.post(
        f"/v1/agents/{b}/requests/{request['id']}", json={"dump": {"configs": []}}, headers=b_auth
    )
    assert "no pending request" in one_error(forged, 404, "not_found")
    # nor as vm-1 without vm-1's credential
    stolen = await client.post(
        f"/v1/agents/{a}/requests/{request['id']}", json={"dump": {}}, headers=b_auth
    )
    assert stolen.status_code == 401

    answered = await client.post(
        f"/v1/agents/{a}/requests/{request['id']}", json={"dump": DUMP}, headers=a_auth
    )
    assert answered.status_code == 200, answered.text
    got = await ask
    assert got.status_code == 200, got.text
    assert got.json() == {"configs": [DUMP["configs"][2]]}


async def answered(
    client: httpx.AsyncClient, agent: tuple[str, dict[str, str]], **params: Any
) -> httpx.Response:
    """``proxy-config`` of web-1 with ``params``, answered by ``agent`` with ``DUMP``."""
    agent_id, auth = agent
    poll = asyncio.create_task(client.get(f"/v1/agents/{agent_id}/requests", headers=auth))
    ask = asyncio.create_task(client.get(f"/v1/proxies/{WEB}/config", params=params))
    [request] = (await poll).json()["requests"]
    url = f"/v1/agents/{agent_id}/requests/{request['id']}"
    assert (await client.post(url, json={"dump": DUMP}, headers=auth)).status_code == 200
    return await ask


async def test_the_whole_dump_or_one_section(client: httpx.AsyncClient) -> None:
    agent = await host(client, "vm-1", "web-1")
    assert (await answered(client, agent)).json() == DUMP
    [clusters] = (await answered(client, agent, type="clusters")).json()["configs"]
    assert clusters["dynamic_active_clusters"][0]["cluster"]["name"] == "default/cart/http"
    line = one_error(await answered(client, agent, type="endpoints"), 404, "not_found")
    assert "no EndpointsConfigDump" in line and "ClustersConfigDump" in line


async def test_an_offline_host_is_a_clear_504_within_the_deadline(
    client: httpx.AsyncClient,
) -> None:
    await host(client, "vm-1", "web-1")
    r = await client.get(f"/v1/proxies/{WEB}/config", params={"timeout": 0.2})
    line = one_error(r, 504, "timeout")
    assert line.startswith(
        f"host vm-1 (which runs {WEB}) did not pick up the config-dump request within 0.2 s"
    )


async def test_the_hosts_error_is_a_502_naming_host_and_proxy(
    client: httpx.AsyncClient,
) -> None:
    a, a_auth = await host(client, "vm-1", "web-1")
    poll = asyncio.create_task(client.get(f"/v1/agents/{a}/requests", headers=a_auth))
    ask = asyncio.create_task(client.get(f"/v1/proxies/{WEB}/config"))
    [request] = (await poll).json()["requests"]
    assert request["includeEds"] is True
    await client.post(
        f"/v1/agents/{a}/requests/{request['id']}",
        json={"error": "this host runs no Envoy"},
        headers=a_auth,
    )
    line = one_error(await ask, 502, "proxy")
    assert line == f"host vm-1 could not read the config dump of {WEB}: this host runs no Envoy"


async def test_a_proxy_no_host_runs_has_no_config_dump(client: httpx.AsyncClient) -> None:
    # a user-applied Workload (no agent), an unknown one, a gateway with no host, garbage
    put = await client.post("/v1/apply", json={"manifests": [workload("solo-1", host=None)]})
    assert put.status_code == 200, put.text
    for node in ("sidecar~default~solo-1", "sidecar~default~nope", "gateway~default~edge", "x"):
        r = await client.get(f"/v1/proxies/{node}/config", params={"timeout": 0.2})
        assert one_error(r, 404, "not_found") == (
            f"no host runs {node}; its config dump is available only through its agent or gateway"
        )


async def test_polls_and_answers_need_the_agents_credential(client: httpx.AsyncClient) -> None:
    a, _ = await host(client, "vm-1", "web-1")
    assert (await client.get(f"/v1/agents/{a}/requests")).status_code == 401
    r = await client.get(
        f"/v1/agents/{a}/requests",
        params={"timeout": 0.1},
        headers={"Authorization": "Bearer nope"},
    )
    assert r.status_code == 401
    assert (await client.post(f"/v1/agents/{a}/requests/r1", json={})).status_code == 401
