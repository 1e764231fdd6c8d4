"""The API's own rights survive any AccessPolicy: one whose ``accessRights`` leave out the
HTTP methods (and ``read``/``apply``/``delete``) used to take them away from the API, which
locked every operator out, the administrator included."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossamer.polling import wait_until
from gossamer.testing import running_control_plane
from gossamer.testing.controlplane import api_client
from gossamer.types import API_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

POLICY = {
    "apiVersion": API_VERSION,
    "kind": "AccessPolicy",
    "metadata": {"name": "queues"},
    "spec": {
        "accessRights": ["publish", "consume"],
        "policyClasses": ["queues"],
        "userAttributes": {"producers": ["queues"]},
        "objectAttributes": {"orders": ["queues"]},
        "associations": [{"userAttribute": "producers", "target": "orders", "rights": ["publish"]}],
    },
}
SERVICE = {
    "apiVersion": API_VERSION,
    "kind": "Service",
    "metadata": {"name": "cart", "namespace": "team-a"},
    "spec": {"ports": [{"name": "http", "port": 8080}]},
}


async def test_an_access_policy_without_http_methods_keeps_the_api_rights(
    tmp_path: Path,
) -> None:
    async with running_control_plane(tmp_path / "cp") as app, api_client(app) as c:
        r = await c.post("/v1/operator-tokens", json={"name": "dash", "readOnly": True})
        assert r.status_code == 200, r.text
        reader = {"Authorization": f"Bearer {r.json()['token']}"}
        r = await c.post("/v1/apply", json={"manifests": [POLICY]})
        assert r.status_code == 200, r.text

        async def rebuilt() -> bool:
            return app.authz is not None and app.authz.engine.graph.find("orders") is not None

        await wait_until(rebuilt, timeout=10, what="the policy in the graph")
        # the administrator still reads, applies and deletes; the reader still reads
        listed = await c.get("/v1/resources")
        assert listed.status_code == 200, listed.text
        applied = await c.post("/v1/apply", json={"manifests": [SERVICE]})
        assert applied.status_code == 200, applied.text
        deleted = await c.delete("/v1/resources/Service/team-a/cart")
        assert deleted.status_code == 200, deleted.text
        assert (await c.get("/v1/resources", headers=reader)).status_code == 200
        statistics = (await c.get("/v1/authz/statistics")).json()
        assert statistics["skipped_journal_entries"] == [], statistics
        # the policy's own rights are there too
        check = await c.post(
            "/v1/authz/check", json={"user": "admin", "target": "orders", "right": "publish"}
        )
        assert check.status_code == 200, check.text
