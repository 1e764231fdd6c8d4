"""An agent's report of its sidecars' denials (``POST /v1/agents/{id}/decisions``): only its
own Workloads; the service, proxy and reporter are the control plane's to set."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import prometheus_client
import pytest
import pytest_asyncio

from gossamer.api.app import create_api
from gossamer.api.decisions import install_agent_reports
from gossamer.authz.decisions import DecisionTrail
from gossamer.registry import Registry

from .mesh import workload
from .test_api import join, one_error


@pytest_asyncio.fixture
async def trail() -> DecisionTrail:
    return DecisionTrail(None)


@pytest_asyncio.fixture
async def client(registry: Registry, trail: DecisionTrail) -> AsyncIterator[httpx.AsyncClient]:
    api = create_api(registry.plane, metrics=prometheus_client.CollectorRegistry(), agents=registry)
    install_agent_reports(api, trail, registry)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://api"
    ) as c:
        yield c


def _record(workload: str, **extra: Any) -> dict[str, Any]:
    return {
        "workload": workload,
        "request_id": "rid-1",
        "at": 1_700_000_000.5,
        "source": "rbac",
        "decision": "deny",
        "caller": "spiffe://mesh.local/ns/default/sa/web",
        "method": "GET",
        "path": "/admin",
        "reason": "rbac_access_denied_matched_policy[svc:default/cart:/admin]",
        **extra,
    }


async def _agent_with(client: httpx.AsyncClient, name: str, host: str) -> tuple[str, Any]:
    agent_id, auth = await join(client, host)
    put = await client.put(
        f"/v1/agents/{agent_id}/workloads",
        json={"workloads": [workload(name, host=host)]},
        headers=auth,
    )
    assert put.status_code == 200, put.text
    return agent_id, auth


@pytest.mark.asyncio
async def test_an_agents_own_denials_are_recorded_with_what_the_control_plane_knows(
    client: httpx.AsyncClient, trail: DecisionTrail
) -> None:
    agent_id, auth = await _agent_with(client, "cart-1", "vm-1")
    answer = await client.post(
        f"/v1/agents/{agent_id}/decisions",
        json={"decisions": [_record("default/cart-1")]},
        headers=auth,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"recorded": 1}
    [d] = trail.find("rid-1")
    assert (d.service, d.proxy, d.reporter) == ("default/cart", "sidecar~default~cart-1", agent_id)
    assert (d.caller, d.method, d.path, d.decision) == (
        "spiffe://mesh.local/ns/default/sa/web",
        "GET",
        "/admin",
        "deny",
    )


@pytest.mark.asyncio
async def test_a_record_of_another_agents_workload_is_refused_and_nothing_recorded(
    client: httpx.AsyncClient, trail: DecisionTrail
) -> None:
    agent_id, auth = await _agent_with(client, "cart-1", "vm-1")
    await _agent_with(client, "cart-2", "vm-2")
    answer = await client.post(
        f"/v1/agents/{agent_id}/decisions",
        json={"decisions": [_record("default/cart-1"), _record("default/cart-2")]},
        headers=auth,
    )
    line = one_error(answer, 403, "forbidden")
    assert "default/cart-2" in line and "did not register" in line
    assert trail.find("rid-1") == []


@pytest.mark.asyncio
async def test_body_fields_the_control_plane_sets_are_refused(
    client: httpx.AsyncClient, trail: DecisionTrail
) -> None:
    agent_id, auth = await _agent_with(client, "cart-1", "vm-1")
    for extra in ({"service": "default/other"}, {"reporter": "x"}, {"proxy": "x"}):
        answer = await client.post(
            f"/v1/agents/{agent_id}/decisions",
            json={"decisions": [_record("default/cart-1", **extra)]},
            headers=auth,
        )
        assert answer.status_code == 422, answer.text
        assert next(iter(extra)) in answer.text
    mismatch = _record("default/cart-1", source="rbac-shadow")
    answer = await client.post(
        f"/v1/agents/{agent_id}/decisions", json={"decisions": [mismatch]}, headers=auth
    )
    assert "decisions[0].decision" in one_error(answer, 422, "validation")
    assert trail.find("rid-1") == []


@pytest.mark.asyncio
async def test_without_the_agents_credential_nothing_is_recorded(
    client: httpx.AsyncClient, trail: DecisionTrail
) -> None:
    agent_id, _ = await _agent_with(client, "cart-1", "vm-1")
    answer = await client.post(
        f"/v1/agents/{agent_id}/decisions",
        json={"decisions": [_record("default/cart-1")]},
        headers={"Authorization": "Bearer wrong"},
    )
    assert answer.status_code == 401
    assert trail.find("rid-1") == []
