"""Join tokens for gateways (``token create --gateway NS/NAME``): the CLI, the API body's
``scope.gateway``, and what the registry lets a gateway's host do (no Workloads; the
certificate of its gateway only)."""

from __future__ import annotations

import json

import pytest

from gossamer.errors import PermissionDeniedError
from gossamer.model.internal import HostScope
from gossamer.registry import Registry

from .mesh import workload
from .test_cli import gossamer, server  # noqa: F401  (the API server fixture)


@pytest.mark.asyncio
async def test_token_create_gateway(server: str, registry: Registry) -> None:  # noqa: F811
    result = await gossamer(server, "token", "create", "--gateway", "edge")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert "the host may serve gateway default/edge" in result.stderr
    assert (
        f"gossamer gateway --server {server} --name edge --namespace default --token {token} "
        "--state-dir DIR"
    ) in result.stderr
    assert registry.list_tokens()[0].scope == HostScope(gateway="default/edge")

    as_json = await gossamer(server, "token", "create", "-o", "json", "--gateway", "shop/edge")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["scope"]["gateway"] == "shop/edge"

    listed = await gossamer(server, "token", "list")
    rows = [line.rstrip() for line in listed.stdout.splitlines()[1:]]
    assert sorted(r.rsplit("  ", 1)[-1].strip() for r in rows) == [
        "gateway default/edge",
        "gateway shop/edge",
    ]

    agent_id, _ = await registry.join(token, "gw-1")
    agents = await gossamer(server, "agents", "list")
    row = next(line for line in agents.stdout.splitlines() if agent_id in line)
    assert "gateway default/edge" in row
    listed_json = json.loads((await gossamer(server, "agents", "list", "-o", "json")).stdout)
    assert listed_json[0]["scope"]["gateway"] == "default/edge"


@pytest.mark.asyncio
async def test_gateway_with_service_flags_is_refused_naming_both(
    server: str,  # noqa: F811
    registry: Registry,
) -> None:
    for extra in (
        ["--service", "web"],
        ["--any-service"],
        ["--namespace", "shop"],
        ["--address", "127.0.0.2"],
    ):
        result = await gossamer(server, "token", "create", "--gateway", "edge", *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert "--gateway and" in result.output and extra[0] in result.output
    bad = await gossamer(server, "token", "create", "--gateway", "Edge!")
    assert bad.exit_code == 1, bad.output
    assert bad.stderr.startswith("scope.gateway: 'Edge!' is not NS/NAME"), bad.stderr
    operator = await gossamer(server, "token", "create", "--operator", "--gateway", "edge")
    assert operator.exit_code == 2, operator.output
    # the API refuses the mix too (a client other than the CLI)
    with pytest.raises(Exception, match="gateway"):
        HostScope.model_validate({"gateway": "edge", "services": ["web"]})
    assert registry.list_tokens() == []


@pytest.mark.asyncio
async def test_a_gateway_host_registers_nothing_and_is_certified_for_its_gateway_only(
    registry: Registry,
) -> None:
    token, _ = await registry.create_token(scope=HostScope(gateway="default/edge"))
    agent_id, _ = await registry.join(token, "vm-1")
    before = await registry.plane.store.revision()
    with pytest.raises(PermissionDeniedError, match="registers no Workloads"):
        await registry.set_workloads(agent_id, [workload("edge-1", "cart")])
    assert await registry.plane.store.revision() == before
    await registry.set_workloads(agent_id, [])  # an empty set is no registration
    assert registry.serves(agent_id, "default", "edge")
    assert not registry.serves(agent_id, "default", "cart")
    assert not registry.serves(agent_id, "shop", "edge")
    assert registry.info(agent_id).addresses == []
