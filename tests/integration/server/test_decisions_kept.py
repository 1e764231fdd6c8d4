"""The request-decision trail outlives a restart of the control plane (docs/ngac.md, "The
audit trail of requests"): a decision reported before is still found by its request id
through the API of a control plane restarted on the same data directory, a crash's torn
last line is skipped and counted, and the 404 of an id with no record says which requests
leave one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing import running_control_plane
from gossamer.testing.controlplane import api_client

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

DECISIONS = "/v1/authz/decisions"
IDS = ("r-old", "r-new")


def _report(request_id: str, decision: str) -> dict[str, Any]:
    return {
        "requestId": request_id,
        "at": 1700000000.5,
        "decision": decision,
        "service": "default/cart",
        "caller": "spiffe://gossamer.local/ns/default/sa/web",
        "endUser": "jwt:https://idp.example#bob",
        "method": "GET",
        "path": "/api/orders/7",
        "reason": "no grant",
    }


async def _report_as_decision_point(
    app: ControlPlaneApp, name: str, *records: dict[str, Any]
) -> None:
    async with api_client(app) as c:
        made = await c.post("/v1/operator-tokens", json={"name": name, "decisionPoint": True})
        assert made.status_code == 200, made.text
    headers = {"Authorization": f"Bearer {made.json()['token']}"}
    async with api_client(app, headers=headers) as c:
        r = await c.post(DECISIONS, json={"decisions": list(records)})
        assert r.status_code == 200, r.text


async def test_a_denial_recorded_before_a_restart_is_still_found_after(tmp_path: Path) -> None:
    data = tmp_path / "cp"
    async with running_control_plane(data) as app:
        await _report_as_decision_point(
            app, "dp", _report("r-old", "deny"), _report("r-ok", "allow")
        )
        trail = app.decisions
        assert trail is not None
        await wait_until(lambda: trail.written == 2, timeout=10, what="the records written")
    # a crash in the middle of a write leaves a torn last line
    with (data / "decisions.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"request_id": "r-torn", "at": 1.0, "sou')

    async with running_control_plane(data) as app:
        async with api_client(app) as c:
            r = await c.get(f"{DECISIONS}/r-old")
            assert r.status_code == 200, r.text
            [d] = r.json()["decisions"]
            assert (d["decision"], d["source"], d["reporter"]) == ("deny", "ext_authz", "dp")
            listed = (await c.get(DECISIONS)).json()["items"]
            assert [i["requestId"] for i in listed] == ["r-ok", "r-old"]
            assert (await c.get(f"{DECISIONS}/r-torn")).status_code == 404
        assert app.decisions is not None and app.decisions.skipped == 1
        # what is recorded after the restart follows the torn line on a line of its own
        await _report_as_decision_point(app, "dp2", _report("r-new", "deny"))
        trail = app.decisions
        await wait_until(lambda: trail.written == 1, timeout=10, what="the new record written")

    async with running_control_plane(data) as app:
        async with api_client(app) as c:
            found = {rid: (await c.get(f"{DECISIONS}/{rid}")).status_code for rid in IDS}
        assert found == {"r-old": 200, "r-new": 200}


async def test_an_unknown_id_says_which_requests_leave_a_record(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        async with api_client(app) as c:
            r = await c.get(f"{DECISIONS}/nobody")
        assert r.status_code == 404
        [text] = r.json()["errors"]
        assert "nobody" in text
        assert "an allowed request leaves none" not in text
        # a sidecar's compiled RBAC reports its denials only; a decision point both
        assert "sidecar" in text and "denial" in text
        assert "decision point" in text and "allow" in text
