"""Every denial explainable (issue 11): what reviews' sidecar denies, or in audit mode would
deny, reaches the control plane's audit trail through its host's agent with the request id
the 403 names, and ``gossamer authz why ID`` says who, what, the decision and the
prohibition or missing grant behind it (real agents, Envoys with strict mTLS, the real CLI).
"""

from __future__ import annotations

import json
import ssl
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.agent.agents import run_cli
from tests.integration.agent.mtls_mesh import WEB_ID, Mesh, two_hosts

from gossamer.polling import wait_until
from gossamer.testing.controlplane import api_client, apply_yaml

from .ngac_mesh import OTHER_ID, RawHttp, callers, manifests, policy

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(300),
]

DECISIONS = "/v1/authz/decisions"


async def _recorded(mesh: Mesh, request_id: str) -> list[dict[str, Any]]:
    """The trail's records of ``request_id``, once there are any (polled)."""

    async def found() -> list[dict[str, Any]] | None:
        async with api_client(mesh.app) as client:
            r = await client.get(f"{DECISIONS}/{request_id}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        decisions: list[dict[str, Any]] = r.json()["decisions"]
        return decisions

    got = await wait_until(found, timeout=30, what=f"the trail to record {request_id}")
    assert isinstance(got, list)
    return got


async def _status_of(mesh: Mesh, request_id: str) -> int:
    async with api_client(mesh.app) as client:
        return (await client.get(f"{DECISIONS}/{request_id}")).status_code


async def _get(url: str, request_id: str, verify: ssl.SSLContext | bool = False) -> int:
    async with httpx.AsyncClient(timeout=10, trust_env=False, verify=verify) as client:
        r = await client.get(url, headers={"x-request-id": request_id})
    return r.status_code


async def test_a_denial_is_recorded_explained_and_an_allowed_request_is_not(
    tmp_path: Path,
) -> None:
    async with two_hosts(tmp_path, manifests("enforce") + "---" + policy()) as mesh:
        server = ("--server", mesh.app.api_url)
        # straight to reviews' inbound with certificates the mesh CA signed (web's outbound
        # address is the same in every such test on this machine: another may hold it)
        ctx = callers(tmp_path, WEB_ID, OTHER_ID)
        inbound = f"https://{mesh.inbound}"

        # enforcing: web's GET on /admin is prohibited (no-admin)
        async def denied() -> bool:
            try:
                return await _get(f"{inbound}/admin/users", str(uuid.uuid4()), ctx[WEB_ID]) == 403
            except httpx.TransportError:
                return False

        await wait_until(denied, timeout=90, what="reviews' sidecar enforcing the graph")
        allowed_id = str(uuid.uuid4())
        assert await _get(f"{inbound}/api/orders/7", allowed_id, ctx[WEB_ID]) == 200

        # the 403's body names the request; the trail has it, with the right facts
        web = await RawHttp.open(mesh.inbound, ctx[WEB_ID])
        try:
            status, body = await web.request("GET", "/x/../admin/users?page=2")
        finally:
            await web.close()
        assert status == 403
        request_id = json.loads(body)["request_id"]
        assert request_id
        [record] = await _recorded(mesh, request_id)
        assert record["decision"] == "deny" and record["source"] == "rbac"
        assert record["caller"] == WEB_ID
        assert (record["method"], record["path"]) == ("GET", "/admin/users")
        assert record["service"] == "default/reviews"
        assert record["proxy"] == "sidecar~default~reviews-1"
        assert record["reason"] == "rbac_access_denied_matched_policy[svc:default/reviews:/admin]"
        assert record["why"]["target"] == "svc:default/reviews:/admin"
        assert record["why"]["rule"] == "GET on svc:default/reviews:/admin prohibited by no-admin"

        # an allowed request leaves no record (the denial after it was shipped already)
        assert await _status_of(mesh, allowed_id) == 404

        # the real CLI, as documented
        code, out = await run_cli("authz", "why", request_id, *server)
        assert code == 0, out
        assert WEB_ID in out and "deny (rbac)" in out
        assert "GET /admin/users to default/reviews" in out
        assert "prohibited by no-admin" in out and "prohibition no-admin denies GET" in out
        code, out = await run_cli("authz", "why", request_id, "-o", "json", *server)
        assert code == 0 and json.loads(out)["decisions"][0]["requestId"] == request_id
        code, out = await run_cli("authz", "why", "no-such-request", *server)
        assert code == 1 and "no decision is recorded for request id 'no-such-request'" in out
        code, out = await run_cli("authz", "denials", "--service", "default/reviews", *server)
        assert code == 0 and request_id in out and allowed_id not in out

        # a caller the graph grants nothing: the missing grant is the reason
        other_id = str(uuid.uuid4())
        assert await _get(f"{inbound}/reviews", other_id, ctx[OTHER_ID]) == 403
        [record] = await _recorded(mesh, other_id)
        assert record["caller"] == OTHER_ID
        assert record["why"]["rule"] == (
            "no association grants GET on svc:default/reviews in policy class shop"
        )
        code, out = await run_cli("authz", "why", other_id, *server)
        assert code == 0 and "no association grants GET" in out, out

        # audit: served, recorded as would-deny
        audit = manifests("enforce").replace(
            "spec: {ports: [{name: http, port: 9080}]}",
            "spec: {ports: [{name: http, port: 9080}], authorization: {mode: audit}}",
        )
        await apply_yaml(mesh.app, audit, wait=True)

        async def served() -> bool:
            return await _get(f"{inbound}/probe", str(uuid.uuid4()), ctx[OTHER_ID]) == 200

        await wait_until(served, timeout=60, what="reviews' sidecar in audit mode")
        audited_id = str(uuid.uuid4())
        assert await _get(f"{inbound}/audited", audited_id, ctx[OTHER_ID]) == 200
        [record] = await _recorded(mesh, audited_id)
        assert (record["decision"], record["source"]) == ("would-deny", "rbac-shadow")
        assert (record["caller"], record["path"]) == (OTHER_ID, "/audited")
        code, out = await run_cli("authz", "why", audited_id, *server)
        assert code == 0 and "would-deny (rbac-shadow)" in out, out

        # the agent counts what it sent
        status = mesh.reviews.status()["denials"]
        assert status["sent"] >= 3 and status["dropped"] == 0, status
