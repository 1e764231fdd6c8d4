"""The REST API decided by the NGAC graph per namespace and kind (issue 11): a token that may
apply in team-a gets 403 for team-b with the reason; a mixed apply changes nothing; listings
across namespaces show only what the token may read; mesh-wide kinds and cluster-wide routes
stay the administrators'; a prohibition's name reaches the 403; existing tokens keep working."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gossamer.testing import running_control_plane
from gossamer.testing.controlplane import api_client
from gossamer.types import API_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def service(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": "http", "port": 8080}]},
    }


async def token(c: httpx.AsyncClient, name: str, **body: Any) -> dict[str, str]:
    r = await c.post("/v1/operator-tokens", json={"name": name, **body})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def names(r: httpx.Response) -> set[str]:
    assert r.status_code == 200, r.text
    return {f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in r.json()["items"]}


async def test_a_team_a_token_applies_reads_and_deletes_in_team_a_only(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app, api_client(app) as c:
        ta = await token(c, "ta", namespaces=["team-a"])
        assert (await c.post("/v1/apply", json={"manifests": [service("b", "team-b")]})).is_success

        ok = await c.post("/v1/apply", json={"manifests": [service("a", "team-a")]}, headers=ta)
        assert ok.status_code == 200, ok.text
        refused = await c.post(
            "/v1/apply", json={"manifests": [service("x", "team-b")]}, headers=ta
        )
        assert refused.status_code == 403, refused.text
        reason = refused.json()["errors"][0]
        for part in (
            "'ta'",
            "Service team-b/x needs 'apply' on kind Service in namespace 'team-b'",
            "NGAC object api:team-b/Service",
            "no association grants 'apply'",
            "--namespace team-b --rights apply",
            "nothing was changed",
        ):
            assert part in reason, (part, reason)

        # all or nothing: one forbidden resource, nothing stored, only it named
        mixed = [service("a2", "team-a"), service("y", "team-b")]
        r = await c.post("/v1/apply", json={"manifests": mixed}, headers=ta)
        assert r.status_code == 403, r.text
        assert "team-b/y" in r.json()["errors"][0] and "a2" not in r.json()["errors"][0]
        assert names(await c.get("/v1/resources/services")) == {"team-a/a", "team-b/b"}

        # reads: across namespaces only team-a's; team-b's are a 403
        assert names(await c.get("/v1/resources", headers=ta)) == {"team-a/a"}
        assert names(await c.get("/v1/resources/svc", headers=ta)) == {"team-a/a"}
        assert names(await c.get("/v1/resources/svc?namespace=team-a", headers=ta)) == {"team-a/a"}
        listed = await c.get("/v1/resources/svc?namespace=team-b", headers=ta)
        assert listed.status_code == 403 and "'read'" in listed.text, listed.text
        assert (await c.get("/v1/resources?namespace=team-b", headers=ta)).status_code == 403
        got = await c.get("/v1/resources/Service/team-b/b", headers=ta)
        assert got.status_code == 403 and "nothing was changed" not in got.text, got.text
        assert (await c.get("/v1/resources/Service/team-a/a", headers=ta)).status_code == 200
        validated = await c.post(
            "/v1/validate", json={"manifests": [service("z", "team-b")]}, headers=ta
        )
        assert validated.status_code == 403, validated.text

        # deletes
        gone = await c.delete("/v1/resources/Service/team-b/b", headers=ta)
        assert gone.status_code == 403 and "'delete'" in gone.text, gone.text
        batch = {"resources": [{"kind": "Service", "namespace": "team-b", "name": "b"}]}
        assert (await c.post("/v1/delete", json=batch, headers=ta)).status_code == 403
        assert (await c.delete("/v1/resources/Service/team-a/a", headers=ta)).status_code == 200

        # mesh-wide kinds and cluster-wide routes are the administrators'
        policy = {
            "apiVersion": API_VERSION,
            "kind": "AccessPolicy",
            "metadata": {"name": "mine", "namespace": "team-a"},
            "spec": {"policyClasses": ["mine"]},
        }
        r = await c.post("/v1/apply", json={"manifests": [policy]}, headers=ta)
        assert r.status_code == 403 and "mesh-wide" in r.text, r.text
        for method, path in (("GET", "/v1/agents"), ("GET", "/v1/proxies"), ("GET", "/metrics")):
            assert (await c.request(method, path, headers=ta)).status_code == 403, path
        minted = await c.post("/v1/operator-tokens", json={"name": "more"}, headers=ta)
        assert minted.status_code == 403, minted.text


async def test_rights_read_only_and_the_old_tokens(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app, api_client(app) as c:
        await c.post("/v1/apply", json={"manifests": [service("a", "team-a")]})
        reader_a = await token(c, "ra", namespaces=["team-a"], readOnly=True)
        applier = await token(c, "ap", namespaces=["team-a", "team-c"], rights=["apply"])
        reader = await token(c, "dash", readOnly=True)
        operator = await token(c, "ops")

        assert names(await c.get("/v1/resources", headers=reader_a)) == {"team-a/a"}
        r = await c.post(
            "/v1/apply", json={"manifests": [service("b", "team-a")]}, headers=reader_a
        )
        assert r.status_code == 403 and "read-only token 'ra'" in r.text, r.text
        assert "it holds read" in r.text, r.text
        assert (
            await c.delete("/v1/resources/Service/team-a/a", headers=reader_a)
        ).status_code == 403

        both = [service("b", "team-a"), service("c", "team-c")]
        assert (await c.post("/v1/apply", json={"manifests": both}, headers=applier)).is_success
        assert (await c.get("/v1/resources/Service/team-a/a", headers=applier)).status_code == 403
        assert names(await c.get("/v1/resources", headers=applier)) == set()

        # the read-only token of the whole API reads every namespace, changes none
        assert names(await c.get("/v1/resources/services", headers=reader)) == {
            "team-a/a",
            "team-a/b",
            "team-c/c",
        }
        r = await c.post("/v1/apply", json={"manifests": [service("d", "team-d")]}, headers=reader)
        assert r.status_code == 403, r.text
        # an operator token of the whole API does everything, a new namespace included
        r = await c.post(
            "/v1/apply", json={"manifests": [service("d", "team-d")]}, headers=operator
        )
        assert r.status_code == 200, r.text
        assert (await c.delete("/v1/resources/Service/team-a/a", headers=operator)).is_success

        listed = {t["name"]: t for t in (await c.get("/v1/operator-tokens")).json()["items"]}
        assert listed["ap"]["kind"] == "namespaced"
        assert listed["ap"]["namespaces"] == ["team-a", "team-c"]
        assert listed["ap"]["rights"] == ["apply"]
        assert listed["ra"]["rights"] == ["read"]
        assert listed["dash"]["kind"] == "read-only" and listed["ops"]["kind"] == "operator"

        # bad input names the field and changes nothing
        bad = await c.post(
            "/v1/operator-tokens", json={"name": "w", "namespaces": ["a"], "rights": ["write"]}
        )
        assert bad.status_code == 422 and "rights[0]" in bad.text and "apply" in bad.text
        bad = await c.post("/v1/operator-tokens", json={"name": "w", "rights": ["read"]})
        assert bad.status_code == 422 and "namespaces" in bad.text, bad.text
        bad = await c.post("/v1/operator-tokens", json={"name": "w", "namespaces": ["Team A"]})
        assert bad.status_code == 422 and "namespaces[0]" in bad.text, bad.text
        bad = await c.post(
            "/v1/operator-tokens", json={"name": "w", "namespaces": ["gossamer-system"]}
        )
        assert bad.status_code == 422 and "own namespace" in bad.text, bad.text
        assert "w" not in {t["name"] for t in (await c.get("/v1/operator-tokens")).json()["items"]}

        # the last whole-API writer is protected; namespaced tokens do not count
        assert (await c.delete("/v1/operator-tokens/ops")).is_success
        last = await c.delete("/v1/operator-tokens/admin")
        assert last.status_code == 409, last.text
        assert (await c.delete("/v1/operator-tokens/ap")).is_success
        r = await c.get("/v1/resources", headers=applier)
        assert r.status_code == 401, r.text


async def test_a_prohibition_is_named_in_the_403(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app, api_client(app) as c:
        ta = await token(c, "ta", namespaces=["team-a"])
        prohibition = {
            "name": "no-services-for-ta",
            "subject": "token:ta",
            "rights": ["apply"],
            "include": ["api:kind/Service"],
        }
        r = await c.post(
            "/v1/authz/commands",
            json={"commands": [{"op": "create_prohibition", "prohibition": prohibition}]},
        )
        assert r.status_code == 200, r.text
        r = await c.post("/v1/apply", json={"manifests": [service("a", "team-a")]}, headers=ta)
        assert r.status_code == 403, r.text
        assert "prohibited by no-services-for-ta" in r.text, r.text
        # other kinds of its namespace are still its own
        route = {
            "apiVersion": API_VERSION,
            "kind": "ExternalService",
            "metadata": {"name": "pay", "namespace": "team-a"},
            "spec": {"hosts": ["localhost"], "port": 443, "protocol": "https"},
        }
        r = await c.post("/v1/apply", json={"manifests": [route]}, headers=ta)
        assert r.status_code == 200, r.text
