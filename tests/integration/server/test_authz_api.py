"""NGAC through the running control plane: policies applied like any resource, decisions
audited, administration checked against the graph, everything surviving a restart."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from gossamer.polling import wait_until
from gossamer.testing import apply_yaml, running_control_plane
from gossamer.testing.controlplane import api_client

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WEB = "spiffe://gossamer.local/ns/default/sa/web"
CRON = "spiffe://gossamer.local/ns/default/sa/cron"
POLICY = f"""
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {{name: shop}}
spec:
  policyClasses: [rbac]
  userAttributes: {{staff: [rbac], batch: [rbac]}}
  objectAttributes: {{cart-api: [rbac]}}
  users: {{"{WEB}": [staff], "{CRON}": [batch]}}
  objects: {{"cart:/items": [cart-api]}}
  associations:
  - {{userAttribute: staff, target: cart-api, rights: [GET, POST]}}
  - {{userAttribute: batch, target: cart-api, rights: [GET, POST]}}
  prohibitions:
  - {{name: batch-read-only, subject: batch, rights: [POST], include: [cart-api]}}
"""


async def check(c: httpx.AsyncClient, base: str, user: str, right: str) -> dict[str, object]:
    r = await c.post(
        f"{base}/v1/authz/check",
        json={"user": user, "target": "cart:/items", "right": right, "caller": "test"},
    )
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def test_policies_decisions_audit_admin_and_restart(tmp_path: Path) -> None:
    data = tmp_path / "cp"
    async with running_control_plane(data) as app, api_client(app, timeout=10) as c:
        base = app.api_url
        await apply_yaml(app, POLICY, wait=False)

        async def applied() -> bool:
            r = await c.post(
                f"{base}/v1/authz/check",
                json={"user": WEB, "target": "cart:/items", "right": "GET"},
            )
            return r.status_code == 200 and r.json()["decision"] == "allow"

        await wait_until(applied, timeout=30, what="the engine to load the applied policy")

        allowed = await check(c, base, WEB, "POST")
        assert allowed["decision"] == "allow"
        assert "rbac" in str(allowed["rule"])
        denied = await check(c, base, CRON, "POST")
        assert denied["decision"] == "deny"
        assert denied["rule"] == "prohibited by batch-read-only"

        # the audit trail: newest first, who asked, the decision and its rule
        audit = (await c.get(f"{base}/v1/authz/audit", params={"limit": 2})).json()["items"]
        # (who asked: the credential's NGAC user, then what the body said)
        assert [(a["user"], a["decision"], a["caller"]) for a in audit] == [
            (CRON, "deny", "admin (test)"),
            (WEB, "allow", "admin (test)"),
        ]
        assert audit[0]["rule"] == "prohibited by batch-read-only"

        # explain and access
        why = (
            await c.get(f"{base}/v1/authz/explain", params={"user": CRON, "target": "cart:/items"})
        ).json()
        assert why["prohibitions"] == {"batch-read-only": ["POST"]}
        access = (await c.get(f"{base}/v1/authz/access", params={"user": WEB})).json()
        assert sorted(access["access"]["cart:/items"]) == ["GET", "POST"]

        # a policy set that would not make a valid graph is refused whole
        bad = POLICY.replace("objects: {", 'objects: {"loop": [nowhere], ')
        r = await c.post(f"{base}/v1/apply", json={"manifests": [yaml.safe_load(bad)]})
        assert r.status_code == 422, r.text
        assert "would not make a valid graph" in r.text
        assert (await check(c, base, WEB, "GET"))["decision"] == "allow"

        # administration runs as the credential's NGAC user, never one the body names
        # (tests/integration/server/test_auth.py: a token without the right is refused) ...
        r = await c.post(
            f"{base}/v1/authz/commands",
            json={"user": WEB, "commands": [{"op": "create_policy_class", "name": "audit"}]},
        )
        assert r.status_code == 422, r.text
        # ... the admin token's user is the bootstrap administrator
        r = await c.post(
            f"{base}/v1/authz/commands",
            json={"commands": [{"op": "create_policy_class", "name": "audit"}]},
        )
        assert r.status_code == 200, r.text
        stats = (await c.get(f"{base}/v1/authz/statistics")).json()
        nodes_before = stats["nodes"]

    # the audit file holds every decision as a JSON line
    lines = (data / "authz-audit.jsonl").read_text().splitlines()
    assert len(lines) >= 4
    assert json.loads(lines[-1])["user"] in (WEB, CRON)

    # restart: policies, the administrative journal and decisions are intact
    async with running_control_plane(data) as app, api_client(app, timeout=10) as c:
        base = app.api_url
        assert (await check(c, base, CRON, "POST"))["decision"] == "deny"
        assert (await check(c, base, WEB, "POST"))["decision"] == "allow"
        stats = (await c.get(f"{base}/v1/authz/statistics")).json()
        assert stats["nodes"] == nodes_before


async def gossamer(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("gossamer")),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_authz_cli_against_the_running_control_plane(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        await apply_yaml(app, POLICY, wait=False)
        server = ("--server", app.api_url)

        async def loaded() -> bool:
            code, _ = await gossamer("authz", "check", WEB, "cart:/items", "GET", *server)
            return code == 0

        await wait_until(loaded, timeout=30, what="the engine to load the applied policy")
        code, out = await gossamer("authz", "check", CRON, "cart:/items", "POST", *server)
        assert code == 1 and out.strip() == "deny (prohibited by batch-read-only)"
        code, out = await gossamer("authz", "explain", CRON, "cart:/items", *server)
        assert code == 0 and "prohibition batch-read-only denies POST" in out
        code, out = await gossamer("authz", "access", WEB, "-o", "json", *server)
        assert code == 0 and sorted(json.loads(out)["access"]["cart:/items"]) == ["GET", "POST"]
        code, out = await gossamer("authz", "audit", "--limit", "1", *server)
        assert code == 0 and "deny" in out and "batch-read-only" in out
        code, out = await gossamer("authz", "check", "nobody", "cart:/items", "GET", *server)
        assert code == 1 and "nobody" in out  # a clear error naming the unknown user


async def test_a_refused_batch_leaves_decisions_working(tmp_path: Path) -> None:
    """Issue 7 D2: a batch refused after its first command created a node (403, then a 422
    for an invalid command) changes nothing; check, access and explain keep answering, and
    the accepted part can be sent again."""
    async with running_control_plane(tmp_path / "cp") as app, api_client(app, timeout=10) as c:
        base = app.api_url
        await apply_yaml(app, POLICY, wait=False)

        async def applied() -> bool:
            r = await c.post(
                f"{base}/v1/authz/check",
                json={"user": WEB, "target": "cart:/items", "right": "GET"},
            )
            return r.status_code == 200 and r.json()["decision"] == "allow"

        await wait_until(applied, timeout=30, what="the engine to load the applied policy")
        nodes = (await c.get(f"{base}/v1/authz/statistics")).json()["nodes"]
        # the administrator may create under cart-api (assigned directly to the policy class
        # rbac) but not below that: the second command is refused after the first ran
        create_reports = {
            "op": "create_object_attribute",
            "name": "reports",
            "parents": ["cart-api"],
        }
        refusals = [
            (403, {"op": "create_object", "name": "reports:/daily", "parents": ["reports"]}),
            # an invalid command: the name is taken
            (422, {"op": "create_object", "name": "cart:/items", "parents": ["cart-api"]}),
        ]
        for status, second in refusals:
            r = await c.post(
                f"{base}/v1/authz/commands",
                json={"commands": [create_reports, second]},
            )
            assert r.status_code == status, r.text
            assert (await check(c, base, WEB, "POST"))["decision"] == "allow"
            assert (await check(c, base, CRON, "POST"))["decision"] == "deny"
            r = await c.get(f"{base}/v1/authz/access", params={"user": WEB})
            assert r.status_code == 200, r.text
            assert sorted(r.json()["access"]["cart:/items"]) == ["GET", "POST"]
            assert "reports" not in r.json()["access"]
            r = await c.get(
                f"{base}/v1/authz/explain", params={"user": CRON, "target": "cart:/items"}
            )
            assert r.status_code == 200, r.text
            assert r.json()["prohibitions"] == {"batch-read-only": ["POST"]}
            assert (await c.get(f"{base}/v1/authz/statistics")).json()["nodes"] == nodes

        # the node the refused batches created and undid can be created for real (staff's
        # grant on cart-api reaches it)
        r = await c.post(f"{base}/v1/authz/commands", json={"commands": [create_reports]})
        assert r.status_code == 200, r.text
        r = await c.get(f"{base}/v1/authz/access", params={"user": WEB})
        assert r.status_code == 200, r.text
        assert sorted(r.json()["access"]["reports"]) == ["GET", "POST"]
        assert (await check(c, base, WEB, "POST"))["decision"] == "allow"
