"""``gossamer token`` and ``gossamer agents`` through HTTP against a real API server (uvicorn,
in the test's event loop; the CLI runs in a thread)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import prometheus_client
import pytest
import pytest_asyncio
import uvicorn
from typer.testing import CliRunner, Result

from gossamer.api.app import create_api
from gossamer.cli.main import app
from gossamer.polling import wait_until
from gossamer.registry import Registry

from .mesh import ANY, workload


@pytest_asyncio.fixture
async def server(registry: Registry) -> AsyncIterator[str]:
    api = create_api(registry.plane, metrics=prometheus_client.CollectorRegistry(), agents=registry)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    uv = uvicorn.Server(uvicorn.Config(api, log_level="warning", lifespan="off"))
    async with asyncio.TaskGroup() as tg:
        serving = tg.create_task(uv.serve(sockets=[sock]))
        await wait_until(lambda: uv.started, timeout=20, what="the API server started")
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            uv.should_exit = True
            await serving
            sock.close()


async def gossamer(server: str, *args: str) -> Result:
    runner = CliRunner(env={"GOSSAMER_SERVER": server, "COLUMNS": "250", "NO_COLOR": "1"})
    return await asyncio.to_thread(lambda: runner.invoke(app, list(args)))


@pytest.mark.asyncio
async def test_token_create_prints_the_token_and_a_join_hint(
    server: str, registry: Registry
) -> None:
    result = await gossamer(
        server, "token", "create", "--ttl", "30m", "--service", "cart", "--address", "127.0.0.2"
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert len(token) >= 43 and "\n" not in token
    assert "single use; expires 2030-01-01 12:30:00 UTC" in result.stderr
    assert "the host may serve cart in default @ 127.0.0.2" in result.stderr
    assert f"gossamer agent join --server {server} --token {token} --host HOST" in result.stderr
    agent_id, _ = await registry.join(token, "vm-1")

    as_json = await gossamer(
        server, "token", "create", "-o", "json", "--any-service", "--namespace", "shop"
    )
    assert as_json.exit_code == 0, as_json.output
    created = json.loads(as_json.stdout)
    assert set(created) == {"token", "expiresAt", "scope"}
    assert created["scope"]["anyService"] and created["scope"]["namespace"] == "shop"

    listed = await gossamer(server, "token", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        *("NAME", "STATE", "EXPIRES", "AGENT", "USED", "BY", "USED", "MAY", "SERVE")
    ]
    used = next(line for line in lines if agent_id in line)
    assert "used" in used.split() and "vm-1" in used.split()
    assert used.rstrip().endswith("cart in default @ 127.0.0.2")
    (unused,) = [line for line in lines if "unused" in line.split()]
    assert unused.rstrip().endswith("any service in shop")


@pytest.mark.asyncio
async def test_a_join_token_must_say_what_its_host_may_serve(
    server: str, registry: Registry
) -> None:
    neither = await gossamer(server, "token", "create")
    assert neither.exit_code == 2, neither.output
    assert "--service NAME" in neither.output and "--any-service" in neither.output
    both = await gossamer(server, "token", "create", "--service", "cart", "--any-service")
    assert both.exit_code == 1, both.output
    assert "scope: give services (--service NAME) or anyService" in both.stderr
    bad = await gossamer(server, "token", "create", "--service", "cart", "--address", "10.0.0.1/8")
    assert bad.exit_code == 1, bad.output
    assert "scope.addresses[0]: '10.0.0.1/8' is not an address or CIDR" in bad.stderr
    operator = await gossamer(server, "token", "create", "--operator", "--service", "cart")
    assert operator.exit_code == 2, operator.output
    assert registry.list_tokens() == []


@pytest.mark.asyncio
async def test_bad_ttl_is_a_usage_error(server: str, registry: Registry) -> None:
    for ttl in ("5x", "0s", "500ms"):
        result = await gossamer(server, "token", "create", "--ttl", ttl, "--any-service")
        assert result.exit_code == 2, (ttl, result.output)
        assert "--ttl" in result.output
    too_long = await gossamer(server, "token", "create", "--ttl", "1000h", "--any-service")
    assert too_long.exit_code == 1
    assert too_long.stderr.startswith("error: body.ttlSeconds:")
    assert "Traceback" not in too_long.output
    assert registry.list_tokens() == []


@pytest.mark.asyncio
async def test_agents_list_and_revoke(server: str, registry: Registry) -> None:
    empty = await gossamer(server, "agents", "list")
    assert empty.stdout.startswith("no agents have joined")
    agent_id, _ = await registry.join((await registry.create_token(scope=ANY))[0], "vm-1")
    await registry.set_workloads(agent_id, [workload("cart-1")])

    listed = await gossamer(server, "agents", "list")
    assert listed.exit_code == 0, listed.output
    row = listed.stdout.splitlines()[1].split()
    assert row[:3] == [agent_id, "vm-1", "active"]
    assert row[-1] == "default/cart-1"

    revoked = await gossamer(server, "agents", "revoke", "vm-1")
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout == (
        f"revoked agent {agent_id} (host vm-1): deleted Workload default/cart-1\n"
    )
    as_json = json.loads((await gossamer(server, "agents", "list", "-o", "json")).stdout)
    assert [(a["agentId"], a["revoked"], a["workloads"]) for a in as_json] == [(agent_id, True, [])]
    missing = await gossamer(server, "agents", "revoke", "vm-9")
    assert missing.exit_code == 1
    assert missing.stderr == (
        "error: no agent or host is named 'vm-9': see `gossamer agents list`\n"
    )


@pytest.mark.asyncio
async def test_unreachable_server_exits_3(registry: Registry) -> None:
    del registry
    result = await gossamer("http://127.0.0.1:9", "agents", "list")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: cannot reach the control plane")
