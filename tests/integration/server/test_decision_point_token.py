"""A decision point's token (``gossamer token create --decision-point NAME``) over the real
control plane's HTTP API: it reads the graph and reports decisions, nothing else; a
read-only operator token cannot report; a report is validated whole (422 naming the
field, nothing recorded), its source and reporter are the control plane's; an allowed
decision is an NGAC event that fires an obligation (docs/ngac.md, "`gossamer authz
serve`")."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from gossamer.agent.trust import CA_FILE_ENV
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing import running_control_plane
from gossamer.testing.controlplane import api_client, apply_yaml, ca_file, operator_env
from gossamer.types import API_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SERVICE = {
    "apiVersion": API_VERSION,
    "kind": "Service",
    "metadata": {"name": "cart"},
    "spec": {"ports": [{"name": "http", "port": 8080}]},
}
BOB = "jwt:https://idp.example#bob"
ORDERS = "svc:default/cart:/api/orders"
POLICY = f"""
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {{name: shop}}
spec:
  policyClasses: [shop]
  userAttributes: {{customers: [shop], ordered: [shop]}}
  objectAttributes: {{"svc:default/cart": [shop], "{ORDERS}": ["svc:default/cart"]}}
  associations: [{{userAttribute: customers, target: "{ORDERS}", rights: [GET]}}]
  obligations:
  - name: orders-mark-buyers
    author: admin
    event: {{operations: [GET], targets: ["{ORDERS}"]}}
    response: [{{op: create_user, name: "{{user}}", parents: [ordered]}}]
"""


def record(request_id: str, **fields: Any) -> dict[str, Any]:
    out = {
        "requestId": request_id,
        "at": 1700000000.5,
        "decision": "allow",
        "service": "default/cart",
        "caller": "spiffe://gossamer.local/ns/default/sa/web",
        "endUser": BOB,
        "method": "GET",
        "path": "/api/orders/7?x=1",
        "reason": "GET granted on svc:default/cart:/api/orders",
    }
    return {**out, **fields}


async def create_token(app: ControlPlaneApp, **body: Any) -> httpx.Response:
    async with api_client(app) as c:
        return await c.post("/v1/operator-tokens", json=body)


def client(app: ControlPlaneApp, token: str) -> httpx.AsyncClient:
    return api_client(app, headers={"Authorization": f"Bearer {token}"})


async def test_a_decision_point_token_reads_the_graph_and_reports_nothing_else(
    tmp_path: Path,
) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        made = await create_token(app, name="dp1", decisionPoint=True)
        assert made.status_code == 200, made.text
        dp = made.json()
        assert (dp["kind"], dp["user"]) == ("decision-point", "decision-point:dp1")
        reader = (await create_token(app, name="ro", readOnly=True)).json()["token"]
        team = (await create_token(app, name="ta", namespaces=["team-a"])).json()["token"]
        async with api_client(app) as c:
            assert (await c.post("/v1/apply", json={"manifests": [SERVICE]})).status_code == 200

        async with client(app, dp["token"]) as c:
            assert (await c.get("/v1/authz/graph")).status_code == 200
            refused = {
                "apply": await c.post("/v1/apply", json={"manifests": [SERVICE]}),
                "read": await c.get("/v1/resources/Service/default/cart"),
                "statistics": await c.get("/v1/statistics"),
                "tokens": await c.get("/v1/operator-tokens"),
                "trail": await c.get("/v1/authz/decisions"),
                "commands": await c.post("/v1/authz/commands", json={"commands": [{}]}),
            }
            for what, r in refused.items():
                assert r.status_code == 403, (what, r.status_code, r.text)
            assert "decision-point token 'dp1'" in refused["statistics"].text
            # a listing across namespaces answers what the token may read: nothing
            assert (await c.get("/v1/resources")).json()["items"] == []
            reported = await c.post("/v1/authz/decisions", json={"decisions": [record("r-1")]})
            assert reported.status_code == 200, reported.text
            assert reported.json()["recorded"] == 1
        assert app.decisions is not None
        [kept] = app.decisions.find("r-1")
        assert (kept.source, kept.reporter, kept.proxy) == ("ext_authz", "dp1", "")
        assert (kept.end_user, kept.path, kept.decision) == (BOB, "/api/orders/7", "allow")

        async with client(app, reader) as c:
            assert (await c.get("/v1/authz/graph")).status_code == 200
            r = await c.post("/v1/authz/decisions", json={"decisions": [record("r-2")]})
            assert r.status_code == 403, r.text
            assert "gossamer:authz-decisions" in r.text
        async with client(app, team) as c:
            assert (await c.get("/v1/authz/graph")).status_code == 403
        assert app.decisions.find("r-2") == []

        # a decision point's token is nothing else
        both = await create_token(app, name="dp2", decisionPoint=True, readOnly=True)
        assert both.status_code == 422 and "readOnly" in both.text
        async with api_client(app) as c:
            listed = {
                t["name"]: t["kind"] for t in (await c.get("/v1/operator-tokens")).json()["items"]
            }
            assert listed["dp1"] == "decision-point" and "dp2" not in listed
            assert (await c.delete("/v1/operator-tokens/dp1")).status_code == 200
        async with client(app, dp["token"]) as c:
            assert (await c.get("/v1/authz/graph")).status_code == 401


async def test_a_report_is_checked_whole_and_its_source_is_the_control_planes(
    tmp_path: Path,
) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        dp = (await create_token(app, name="dp", decisionPoint=True)).json()["token"]
        bad = {
            "decisions[1].service": record("b-2", service="cart"),
            "decisions[1].decision": record("b-2", decision="would-deny"),
            "decisions[1].requestId": record("b-2", requestId=""),
            "decisions[1].source": record("b-2", source="rbac"),
            "decisions[1].reporter": record("b-2", reporter="someone-else"),
        }
        async with client(app, dp) as c:
            for field, second in bad.items():
                r = await c.post("/v1/authz/decisions", json={"decisions": [record("b-1"), second]})
                assert r.status_code == 422, (field, r.text)
                assert field in r.text, (field, r.text)
        assert app.decisions is not None and app.decisions.find("b-1") == []


async def test_an_allowed_decision_fires_an_obligation(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        await apply_yaml(app, POLICY)
        dp = (await create_token(app, name="dp", decisionPoint=True)).json()["token"]
        assert app.authz is not None
        engine = app.authz.engine
        async with client(app, dp) as c:
            graph = (await c.get("/v1/authz/graph")).json()
            # denied, and allowed elsewhere: no event matches
            denied = record("e-1", decision="deny", reason="no")
            elsewhere = record("e-2", path="/api/items")
            r = await c.post("/v1/authz/decisions", json={"decisions": [denied, elsewhere]})
            assert r.status_code == 200, r.text
            assert r.json()["events"] == 1  # the allowed one: an event, matching nothing
            r = await c.post("/v1/authz/decisions", json={"decisions": [record("e-3")]})
            assert r.json() == {"recorded": 1, "events": 1}
            await wait_until(
                lambda: engine.graph.find(BOB) is not None, timeout=10, what="bob created"
            )
            parents = {engine.graph.name(n) for n in engine.graph.parents(engine.graph.id(BOB))}
            assert parents == {"ordered"}
            # the graph decision points follow changed, and the change is durable
            after = (await c.get("/v1/authz/graph", params={"after": graph["version"]})).json()
            assert after["version"] != graph["version"]
            assert BOB in json.dumps(after["graph"])
        journal = await app.plane.list("AccessCommand", "gossamer-system")
        assert any("obligation:orders-mark-buyers" in json.dumps(m) for m in journal)


async def test_token_create_decision_point_from_the_cli(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        argv = [sys.executable, "-c", "from gossamer.cli.main import run; run()", "token"]
        argv += ["create", "--decision-point", "edge-1", "--server", app.api_url]
        env = {**operator_env(app), CA_FILE_ENV: str(ca_file(app))}
        done = await asyncio.to_thread(
            subprocess.run, argv, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert "decision-point token 'edge-1'" in done.stderr
        async with client(app, done.stdout.strip()) as c:
            assert (await c.get("/v1/authz/graph")).status_code == 200
            assert (await c.get("/v1/statistics")).status_code == 403
        mixed = [*argv, "--read-only"]
        done = await asyncio.to_thread(
            subprocess.run, mixed, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode != 0 and "--decision-point" in done.stderr
