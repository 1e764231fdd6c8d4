"""The agent protocol over HTTP (ASGI transport) against a real ControlPlane."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import prometheus_client
import pytest
import pytest_asyncio

from gossamer.api.app import create_api
from gossamer.controlplane.plane import ControlPlane
from gossamer.registry import Registry

from .mesh import Clock, workload


@pytest_asyncio.fixture
async def client(registry: Registry) -> AsyncIterator[httpx.AsyncClient]:
    api = create_api(registry.plane, metrics=prometheus_client.CollectorRegistry(), agents=registry)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://api"
    ) as c:
        yield c


async def join(client: httpx.AsyncClient, host: str = "vm-1") -> tuple[str, dict[str, str]]:
    created = await client.post(
        "/v1/tokens", json={"ttlSeconds": 600, "scope": {"anyService": True, "anyNamespace": True}}
    )
    assert created.status_code == 200, created.text
    joined = await client.post(
        "/v1/agents/join", json={"token": created.json()["token"], "host": host}
    )
    assert joined.status_code == 200, joined.text
    body = joined.json()
    return body["agentId"], {"Authorization": f"Bearer {body['credential']}"}


def one_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    (line,) = body["errors"]
    assert isinstance(line, str) and "\n" not in line
    return line


@pytest.mark.asyncio
async def test_token_join_register_health_env_and_list(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    created = await client.post(
        "/v1/tokens", json={"scope": {"anyService": True, "anyNamespace": True}}
    )
    assert created.status_code == 200
    assert set(created.json()) == {"token", "expiresAt", "scope"}
    assert created.json()["expiresAt"] == "2030-01-01T13:00:00Z"

    agent_id, auth = await join(client)
    put = await client.put(
        f"/v1/agents/{agent_id}/workloads",
        json={"workloads": [workload("cart-1", dependencies=[{"service": "catalog"}])]},
        headers=auth,
    )
    assert put.status_code == 200, put.text
    assert put.json()["diff"]["created"] == ["Workload default/cart-1"]

    health = await client.post(
        f"/v1/agents/{agent_id}/health?wait=true&timeout=5",
        json={"workloads": {"cart-1": "draining"}},
        headers=auth,
    )
    assert health.status_code == 200, health.text
    assert health.json()["diff"]["updated"] == ["Workload default/cart-1"]
    stored = (await client.get("/v1/resources/Workload/default/cart-1")).json()
    assert stored["spec"]["health"] == "draining"
    assert stored["metadata"]["labels"]["gossamer.dev/agent"] == agent_id

    env = await client.get(f"/v1/agents/{agent_id}/env", headers=auth)
    assert env.status_code == 200, env.text
    (w,) = env.json()["workloads"]
    (dep,) = w["dependencies"]
    assert (w["name"], dep["service"], dep["portName"], dep["port"]) == (
        "cart-1",
        "catalog",
        "http",
        9090,
    )
    assert dep["address"].startswith("127.")
    assert w["env"] == {
        "CATALOG_HOST": dep["address"],
        "CATALOG_PORT": "9090",
        "CATALOG_ADDR": f"{dep['address']}:9090",
    }

    me = await client.get(f"/v1/agents/{agent_id}", headers=auth)
    assert me.json()["host"] == "vm-1"
    (listed,) = (await client.get("/v1/agents")).json()["items"]
    assert listed == {
        "agentId": agent_id,
        "host": "vm-1",
        "joinedAt": "2030-01-01T12:00:00Z",
        "lastSeen": "2030-01-01T12:00:00Z",
        "revoked": False,
        "revokedAt": None,
        "workloads": ["default/cart-1"],
        "state": "active",
        "scope": {
            "services": [],
            "anyService": True,
            "namespace": None,
            "anyNamespace": True,
            "addresses": [],
            "gateway": None,
        },
        "addresses": ["127.0.0.2"],  # fixed by its first registration
    }
    tokens = (await client.get("/v1/tokens")).json()["items"]
    assert sorted((t["state"], t["usedBy"]) for t in tokens) == [("unused", None), ("used", "vm-1")]
    assert all("token" not in t and "sha256" not in t for t in tokens)
    assert [t["agentId"] for t in tokens if t["state"] == "used"] == [agent_id]


@pytest.mark.asyncio
async def test_join_refusals_are_401_with_one_line(client: httpx.AsyncClient) -> None:
    token = (
        await client.post(
            "/v1/tokens",
            json={"ttlSeconds": 60, "scope": {"anyService": True, "anyNamespace": True}},
        )
    ).json()["token"]
    assert (await client.post("/v1/agents/join", json={"token": token, "host": "vm-1"})).is_success
    again = await client.post("/v1/agents/join", json={"token": token, "host": "vm-2"})
    assert "already used" in one_error(again, 401, "unauthorized")
    assert again.headers["www-authenticate"] == "Bearer"
    unknown = await client.post("/v1/agents/join", json={"token": "x" * 43, "host": "vm-2"})
    assert "not known" in one_error(unknown, 401, "unauthorized")


@pytest.mark.asyncio
async def test_bad_input_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    token = (
        await client.post("/v1/tokens", json={"scope": {"anyService": True, "anyNamespace": True}})
    ).json()["token"]
    bad_host = await client.post("/v1/agents/join", json={"token": token, "host": "VM_1"})
    assert one_error(bad_host, 422, "validation").startswith("host: 'VM_1' is not a valid name")
    ttl = await client.post(
        "/v1/tokens", json={"ttlSeconds": 0, "scope": {"anyService": True, "anyNamespace": True}}
    )
    assert one_error(ttl, 422, "request").startswith("body.ttlSeconds:")
    tokens = (await client.get("/v1/tokens")).json()["items"]
    assert [t["state"] for t in tokens] == ["unused"]


@pytest.mark.asyncio
async def test_agent_calls_need_their_own_live_credential(client: httpx.AsyncClient) -> None:
    a, auth_a = await join(client, "vm-1")
    b, auth_b = await join(client, "vm-2")
    url = f"/v1/agents/{a}/workloads"
    body = {"workloads": [workload("cart-1")]}
    assert "no credential" in one_error(await client.put(url, json=body), 401, "unauthorized")
    basic = {"Authorization": "Basic abc"}
    assert "no credential" in one_error(
        await client.put(url, json=body, headers=basic), 401, "unauthorized"
    )
    assert f"not agent {a}'s" in one_error(
        await client.put(url, json=body, headers=auth_b), 401, "unauthorized"
    )
    assert (await client.put(url, json=body, headers=auth_a)).is_success

    revoked = await client.post("/v1/agents/vm-1/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json() == {
        "revoked": [{"agentId": a, "host": "vm-1", "deleted": ["Workload default/cart-1"]}]
    }
    assert (await client.get("/v1/resources/Workload/default/cart-1")).status_code == 404
    for method, path in (
        ("GET", f"/v1/agents/{a}/env"),
        ("GET", f"/v1/agents/{a}"),
        ("POST", f"/v1/agents/{a}/health"),
    ):
        r = await client.request(method, path, headers=auth_a, json={"workloads": {}})
        assert "was revoked at" in one_error(r, 401, "unauthorized")
    assert (await client.get(f"/v1/agents/{b}", headers=auth_b)).is_success
    missing = await client.post("/v1/agents/vm-9/revoke")
    assert "no agent or host is named 'vm-9'" in one_error(missing, 404, "not_found")


@pytest.mark.asyncio
async def test_conflicts_are_409(client: httpx.AsyncClient) -> None:
    a, auth_a = await join(client, "vm-1")
    _, auth_b = await join(client, "vm-2")
    put = await client.put(
        f"/v1/agents/{a}/workloads", json={"workloads": [workload("cart-1")]}, headers=auth_a
    )
    assert put.is_success
    user = await client.post("/v1/apply", json={"manifests": [workload("cart-1")]})
    assert f"registered by agent {a}" in one_error(user, 409, "conflict")
    token = (
        await client.post("/v1/tokens", json={"scope": {"anyService": True, "anyNamespace": True}})
    ).json()["token"]
    taken = await client.post("/v1/agents/join", json={"token": token, "host": "vm-1"})
    assert "already has an active agent" in one_error(taken, 409, "conflict")
    wrong_host = await client.put(
        f"/v1/agents/{a}/workloads",
        json={"workloads": [workload("c", host="vm-2")]},
        headers=auth_a,
    )
    assert "this agent joined as host 'vm-1'" in one_error(wrong_host, 422, "validation")
    internal = await client.post(
        "/v1/apply",
        json={
            "manifests": [
                {
                    "apiVersion": "gossamer.dev/v1",
                    "kind": "JoinToken",
                    "metadata": {"name": "t"},
                    "spec": {
                        "sha256": "0" * 64,
                        "agentId": "agent-x",
                        "expiresAt": "2031-01-01T00:00:00Z",
                    },
                }
            ]
        },
    )
    assert "kept by the control plane itself" in one_error(internal, 422, "validation")
    del auth_b


def reason(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    return str(response.json()["reason"])


@pytest.mark.asyncio
async def test_every_401_says_why_and_only_a_revoked_agent_is_told_revoked(
    client: httpx.AsyncClient,
) -> None:
    """An agent acts on ``reason``: it stops only for ``revoked`` (issue 7, R1)."""
    a, auth_a = await join(client, "vm-1")
    _, auth_b = await join(client, "vm-2")
    token = (
        await client.post(
            "/v1/tokens",
            json={"ttlSeconds": 60, "scope": {"anyService": True, "anyNamespace": True}},
        )
    ).json()["token"]
    assert (await client.post("/v1/agents/join", json={"token": token, "host": "vm-3"})).is_success
    used = await client.post("/v1/agents/join", json={"token": token, "host": "vm-4"})
    assert reason(used) == "token_used"
    unknown_token = await client.post("/v1/agents/join", json={"token": "x" * 43, "host": "vm-4"})
    assert reason(unknown_token) == "token_unknown"
    url = f"/v1/agents/{a}"
    assert reason(await client.get(url)) == "no_credential"
    assert reason(await client.get(url, headers=auth_b)) == "wrong_credential"
    # a control plane that never heard of the agent: its store was lost, or another one
    forgotten = await client.get("/v1/agents/agent-0123456789", headers=auth_a)
    assert reason(forgotten) == "unknown_agent"
    assert one_error(forgotten, 401, "unauthorized").startswith("unknown agent: ")
    assert (await client.post("/v1/agents/vm-1/revoke")).is_success
    assert reason(await client.get(url, headers=auth_a)) == "revoked"


@pytest.mark.asyncio
async def test_the_agent_protocol_waits_while_the_control_plane_loads(
    plane: ControlPlane, clock: Clock
) -> None:
    """Every route of the agents router answers 503 not_ready until the plane has loaded
    (checked before the credential: a restarting control plane does not answer 401)."""
    registry = Registry(plane, clock=clock)
    api = create_api(plane, metrics=prometheus_client.CollectorRegistry(), agents=registry)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://api"
    ) as client:
        for response in (
            await client.post(
                "/v1/tokens", json={"scope": {"anyService": True, "anyNamespace": True}}
            ),
            await client.get("/v1/agents"),
            await client.get("/v1/agents/a-1", headers={"Authorization": "Bearer wrong"}),
        ):
            line = one_error(response, 503, "not_ready")
            assert line == "the control plane is still loading its state; retry in a moment"
        assert (await client.get("/readyz")).status_code == 503
        await plane.load()
        assert (await client.get("/readyz")).status_code == 200
        await join(client)
