"""A control plane that lets no one in (issue 9): every route of the real control plane over
HTTP, without a credential, with a read-only, a revoked and a wrong token; the first token
on disk; forged requests (a form post, a foreign Host)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from gossamer.server.app import ControlPlaneApp
from gossamer.testing import running_control_plane
from gossamer.testing.controlplane import api_verify
from gossamer.types import API_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

#: the /v1 routes that take no operator token: joining takes a join token in its body
OPEN_V1 = {("POST", "/v1/agents/join")}
#: what anyone may read
OPEN = ["/healthz", "/readyz", "/openapi.json", "/docs"]
SERVICE = {
    "apiVersion": API_VERSION,
    "kind": "Service",
    "metadata": {"name": "cart"},
    "spec": {"ports": [{"name": "http", "port": 8080}]},
}


def admin_token(data: Path) -> str:
    return (data / "admin.token").read_text().strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def anonymous(app: ControlPlaneApp) -> httpx.AsyncClient:
    """A client of ``app``'s API (HTTPS, verified) sending no credential."""
    return httpx.AsyncClient(
        base_url=app.api_url, timeout=30, trust_env=False, verify=api_verify(app)
    )


def routes(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (method, path) of the app's OpenAPI, path parameters filled in."""
    out = []
    for path, operations in openapi["paths"].items():
        for method in operations:
            out.append((method.upper(), re.sub(r"\{[^}]+\}", "x", path)))
    return sorted(out)


def assert_refused(r: httpx.Response, what: str) -> None:
    assert r.status_code == 401, f"{what}: {r.status_code} {r.text}"
    assert r.headers.get("www-authenticate") == "Bearer", what
    errors = r.json()["errors"]
    assert len(errors) == 1 and "\n" not in errors[0], (what, errors)


async def test_every_v1_route_and_metrics_refuse_a_request_without_credential(
    tmp_path: Path,
) -> None:
    async with (
        running_control_plane(tmp_path / "cp") as app,
        anonymous(app) as c,
    ):
        for path in OPEN:
            assert (await c.get(path)).status_code == 200, path
        table = routes((await c.get("/openapi.json")).json())
        guarded = [(m, p) for m, p in table if p.startswith("/v1/") and (m, p) not in OPEN_V1]
        # every kind of route is in the table: resources, proxies, agents, authz, ca, tokens,
        # describe
        parts = ("/v1/apply", "/v1/proxies", "/v1/agents", "/v1/authz", "/v1/ca", "token")
        for part in (*parts, "/v1/describe"):
            assert any(part in p for _, p in guarded), part
        for method, path in [*guarded, ("GET", "/metrics")]:
            body = {} if method in ("POST", "PUT", "PATCH") else None
            r = await c.request(method, path, json=body)
            assert_refused(r, f"{method} {path}")
        missing = await c.post("/v1/apply", json={"manifests": [SERVICE]})
        assert_refused(missing, "apply")
        message = missing.json()["errors"][0]
        assert "--token" in message and "GOSSAMER_TOKEN" in message
        assert str(tmp_path / "cp" / "admin.token") in message
        wrong = await c.get("/v1/resources", headers=bearer("not-a-token"))
        assert_refused(wrong, "wrong token")
        assert (await c.get("/v1/resources/services")).status_code == 401
        # nothing was stored by any of them
        r = await c.get("/v1/resources/services", headers=bearer(admin_token(tmp_path / "cp")))
        assert r.status_code == 200 and r.json()["items"] == []


async def test_read_only_token_reads_but_cannot_write_and_revoked_is_refused(
    tmp_path: Path,
) -> None:
    data = tmp_path / "cp"
    async with (
        running_control_plane(data) as app,
        anonymous(app) as c,
    ):
        admin = bearer(admin_token(data))
        created = await c.post(
            "/v1/operator-tokens", json={"name": "dash", "readOnly": True}, headers=admin
        )
        assert created.status_code == 200, created.text
        assert created.json()["user"] == "token:dash"
        reader = bearer(created.json()["token"])

        assert (await c.get("/v1/resources", headers=reader)).status_code == 200
        assert (await c.get("/metrics", headers=reader)).status_code == 200
        # describe is a read: a 404 for a service that does not exist, not a 403
        described = await c.get("/v1/describe/services/default/nope", headers=reader)
        assert described.status_code == 404, described.text
        validated = await c.post("/v1/validate", json={"manifests": [SERVICE]}, headers=reader)
        assert validated.status_code == 200, validated.text
        refused = await c.post("/v1/apply", json={"manifests": [SERVICE]}, headers=reader)
        assert refused.status_code == 403, refused.text
        assert "read-only token 'dash'" in refused.json()["errors"][0]
        deleted = await c.delete("/v1/resources/Service/default/cart", headers=reader)
        assert deleted.status_code == 403
        minted = await c.post("/v1/operator-tokens", json={"name": "mine"}, headers=reader)
        assert minted.status_code == 403
        applied = await c.post("/v1/apply", json={"manifests": [SERVICE]}, headers=admin)
        assert applied.status_code == 200, applied.text

        listed = await c.get("/v1/operator-tokens", headers=reader)
        items = {t["name"]: t for t in listed.json()["items"]}
        assert {n: t["kind"] for n, t in items.items()} == {
            "admin": "operator",
            "dash": "read-only",
        }
        assert created.json()["token"] not in listed.text

        revoked = await c.delete("/v1/operator-tokens/dash", headers=admin)
        assert revoked.status_code == 200, revoked.text
        after = await c.get("/v1/resources", headers=reader)
        assert_refused(after, "revoked token")
        assert after.json()["reason"] == "revoked"
        # the last token that can write is not revoked: that would lock every operator out
        last = await c.delete("/v1/operator-tokens/admin", headers=admin)
        assert last.status_code == 409, last.text
        assert (await c.get("/v1/resources", headers=admin)).status_code == 200


async def test_ngac_commands_run_as_the_credential_never_a_body_user(tmp_path: Path) -> None:
    data = tmp_path / "cp"
    async with (
        running_control_plane(data) as app,
        anonymous(app) as c,
    ):
        admin = bearer(admin_token(data))
        created = await c.post(
            "/v1/operator-tokens", json={"name": "ops", "readOnly": True}, headers=admin
        )
        ops = bearer(created.json()["token"])
        new_pc = [{"op": "create_policy_class", "name": "mine"}]
        # the old hole: a body naming admin ran the batch as admin
        named = await c.post(
            "/v1/authz/commands", json={"user": "admin", "commands": new_pc}, headers=admin
        )
        assert named.status_code == 422, named.text
        assert named.json()["errors"][0].startswith("user: is not accepted")
        # let token:ops write to the API, but give it no administrative right in the graph
        grant = [
            {"op": "create_user_attribute", "name": "api-writers", "parents": ["PM_ADMIN"]},
            {
                "op": "associate",
                "userAttribute": "api-writers",
                "target": "gossamer:api",
                "rights": ["GET", "POST"],
            },
            {"op": "assign", "child": "token:ops", "parents": ["api-writers"]},
        ]
        granted = await c.post("/v1/authz/commands", json={"commands": grant}, headers=admin)
        assert granted.status_code == 200, granted.text
        as_ops = await c.post("/v1/authz/commands", json={"commands": new_pc}, headers=ops)
        assert as_ops.status_code == 403, as_ops.text
        assert "token:ops" in as_ops.json()["errors"][0]
        as_admin = await c.post("/v1/authz/commands", json={"commands": new_pc}, headers=admin)
        assert as_admin.status_code == 200, as_admin.text


async def test_forged_requests_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "cp"
    async with (
        running_control_plane(data, api_hosts=("cp.example",)) as app,
        anonymous(app) as c,
    ):
        admin = bearer(admin_token(data))
        port = app.api_addr[1]
        # what a cross-site HTML form can send, credential or not
        for content_type, body in (
            ("application/x-www-form-urlencoded", b"manifests=x"),
            ("multipart/form-data; boundary=b", b"--b--\r\n"),
            ("text/plain", b'{"manifests": []}'),
        ):
            for headers in ({}, admin):
                r = await c.post(
                    "/v1/agents/vm-a/revoke",
                    content=body,
                    headers={**headers, "content-type": content_type},
                )
                assert r.status_code == 415, (content_type, r.text)
                assert "application/json" in r.json()["errors"][0]
        # DNS rebinding: the page's own name in Host
        for host in ("evil.example", f"evil.example:{port}", "cp.example.evil"):
            r = await c.get("/v1/resources", headers={**admin, "host": host})
            assert r.status_code == 421, (host, r.text)
            assert "--api-host" in r.json()["errors"][0]
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "cp.example", "CP.example.:80"):
            r = await c.get("/v1/resources", headers={**admin, "host": host})
            assert r.status_code == 200, (host, r.text)


async def test_admin_token_file_is_private_and_its_secret_is_stored_only_hashed(
    tmp_path: Path,
) -> None:
    data = tmp_path / "cp"
    async with running_control_plane(data) as app:
        token = admin_token(data)
        assert stat.S_IMODE(os.stat(data / "admin.token").st_mode) == 0o600
        async with anonymous(app) as c:
            created = await c.post(
                "/v1/operator-tokens", json={"name": "second"}, headers=bearer(token)
            )
            second = created.json()["token"]
            assert (await c.get("/v1/resources", headers=bearer(second))).status_code == 200
    again = admin_token(data)
    assert again == token, "a restart keeps the first token (it is written only once)"
    for path in data.rglob("*"):
        if path.is_file() and path.name != "admin.token":
            content = path.read_bytes()
            for secret in (token, second):
                assert secret.encode() not in content, path
    # after a restart both still work: the hashes are in the store
    async with (
        running_control_plane(data) as app,
        anonymous(app) as c,
    ):
        for secret in (token, second):
            assert (await c.get("/v1/resources", headers=bearer(secret))).status_code == 200
