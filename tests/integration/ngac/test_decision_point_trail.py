"""The decision point's decisions in the audit trail, and obligations on them (issue 11,
dynamic mode): through real agents and Envoys (strict mTLS), the control plane's own
``authz serve`` child (a decision point's token) reports each check it decides; a JWT
user's allowed and denied requests are found by the request id the client sent, with
source ``ext_authz``, the end user and the calling service; an obligation on the allowed
request's event ("who GETs under /api/orders joins `ordered`") changes the graph, so the
same user's next request elsewhere is allowed where it was denied.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.agent.mtls_mesh import WEB_ID, Mesh, two_hosts, wait_served

from gossamer.polling import wait_until
from gossamer.testing.controlplane import api_client, apply_yaml

from .ngac_mesh import manifests
from .test_end_users_mesh import IDP, ISSUER, _mesh_with_issuer, _policy

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(300),
]

BOB = f"jwt:{ISSUER}#bob"
ORDERS = "svc:default/reviews:/api/orders"
#: whoever GETs under /api/orders becomes a node in `ordered`, which may GET all of reviews
OBLIGATION = f"""
  obligations:
  - name: buyers-read-reviews
    author: admin
    event: {{operations: [GET], targets: ["{ORDERS}"]}}
    response: [{{op: create_user, name: "{{user}}", parents: [ordered]}}]
"""


def _obligated_policy() -> str:
    text = _policy().replace("customers: [shop]}", "customers: [shop], ordered: [shop]}")
    grant = '  - {userAttribute: ordered, target: "svc:default/reviews", rights: [GET]}\n'
    text = text.replace("  associations:\n", f"  associations:\n{grant}")
    return text.rstrip("\n") + "\n" + OBLIGATION


async def _get(mesh: Mesh, path: str, token: str, request_id: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "x-request-id": request_id}
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return await client.get(f"{mesh.outbound}{path}", headers=headers)


async def _recorded(mesh: Mesh, request_id: str) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        async with api_client(mesh.app) as client:
            r = await client.get(f"/v1/authz/decisions/{request_id}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        records = [d for d in r.json()["decisions"] if d["source"] == "ext_authz"]
        return records or None

    got = await wait_until(found, timeout=30, what=f"the trail to record {request_id}")
    assert isinstance(got, list)
    return got


async def test_a_jwt_users_decisions_reach_the_trail_and_fire_obligations(
    tmp_path: Path,
) -> None:
    async with two_hosts(tmp_path, manifests("enforce") + "---" + _obligated_policy()) as mesh:
        await wait_served(mesh)
        await apply_yaml(mesh.app, _mesh_with_issuer())
        bob = IDP.token("bob", "shop", claims={"groups": ["customers"]})

        # bob may GET under /api/orders only: elsewhere the decision point says no
        async def refused_by_the_decision_point() -> bool:
            r = await _get(mesh, "/reviews/1", bob, str(uuid.uuid4()))
            return r.status_code == 403 and BOB in r.text

        await wait_until(refused_by_the_decision_point, timeout=60, what="the decision point")
        denied_id = str(uuid.uuid4())
        denied = await _get(mesh, "/reviews/1?page=2", bob, denied_id)
        assert denied.status_code == 403, denied.text

        allowed_id = str(uuid.uuid4())
        allowed = await _get(mesh, "/api/orders/7", bob, allowed_id)
        assert allowed.status_code == 200, allowed.text

        [record] = await _recorded(mesh, allowed_id)
        assert (record["decision"], record["endUser"], record["caller"]) == ("allow", BOB, WEB_ID)
        assert (record["service"], record["method"]) == ("default/reviews", "GET")
        assert record["path"] == "/api/orders/7" and record["proxy"] == ""
        assert record["reporter"].startswith("authz-")  # the child's decision-point token
        [record] = await _recorded(mesh, denied_id)
        assert (record["decision"], record["endUser"], record["path"]) == (
            "deny",
            BOB,
            "/reviews/1",
        )
        assert record["reason"] == f"{BOB} (as customers) may not GET svc:default/reviews"

        # the allowed GET under /api/orders fired the obligation: bob is now in `ordered`,
        # the graph reaches the decision point, and the same request is allowed
        async def allowed_now() -> bool:
            r = await _get(mesh, "/reviews/1", bob, str(uuid.uuid4()))
            return r.status_code == 200

        await wait_until(allowed_now, timeout=30, what="bob allowed after the obligation")
        assert mesh.app.authz is not None
        graph = mesh.app.authz.engine.graph
        assert {graph.name(p) for p in graph.parents(graph.id(BOB))} == {"ordered"}
        # another user of the same group did not GET /api/orders: still refused
        alice = IDP.token("alice", "shop", claims={"groups": ["customers"]})
        assert (await _get(mesh, "/reviews/1", alice, str(uuid.uuid4()))).status_code == 403
