"""``gossamer backup`` from a running control plane, ``gossamer restore`` into a new data
directory, and the control plane started there: the same resources, NGAC decisions and
journal, and the same CA (a certificate issued before verifies after)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner, Result

from gossamer.ca.material import signed_by
from gossamer.cli.main import app as cli
from gossamer.polling import wait_until
from gossamer.registry.operators import ADMIN_TOKEN_FILE
from gossamer.server.app import ControlPlaneApp
from gossamer.testing import apply_yaml, running_control_plane
from gossamer.testing.controlplane import api_client

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PASS = "a long enough passphrase"
WEB = "spiffe://gossamer.local/ns/default/sa/web"
CRON = "spiffe://gossamer.local/ns/default/sa/cron"
MESH = f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: shop}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: shop-1}}
spec: {{service: shop, address: 127.0.0.2, sidecar: false, ports: [{{port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: 18080}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: edge}}
spec:
  gateways: [edge]
  rules: [{{destinations: [{{service: shop}}]}}]
---
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


async def run(*args: str, server: str | None = None) -> Result:
    env = {"COLUMNS": "250", "NO_COLOR": "1", **({"GOSSAMER_SERVER": server} if server else {})}
    runner = CliRunner(env=env)
    return await asyncio.to_thread(lambda: runner.invoke(cli, list(args)))


async def decision(c: httpx.AsyncClient, user: str, right: str) -> str:
    r = await c.post(
        "/v1/authz/check", json={"user": user, "target": "cart:/items", "right": right}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["decision"])


async def state(app: ControlPlaneApp) -> dict[str, object]:
    stored, _ = await app.store.list()
    return {str(s.key): s.manifest for s in stored}


def _leaf(app: ControlPlaneApp) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    assert app.ca is not None
    issued = app.ca.sign(
        csr.public_bytes(serialization.Encoding.PEM),
        spiffe_id="spiffe://gossamer.local/ns/default/sa/shop",
        ttl=timedelta(hours=1),
    )
    return x509.load_pem_x509_certificates(issued.chain_pem)[0]


async def test_backup_restore_brings_back_resources_ngac_and_the_ca(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    archive, secret = tmp_path / "mesh.backup", tmp_path / "pass"
    secret.write_text(PASS + "\n")
    async with running_control_plane(one) as app, api_client(app, timeout=10) as c:
        await apply_yaml(app, MESH, wait=False)

        async def loaded() -> bool:
            return await decision(c, WEB, "GET") == "allow"

        await wait_until(loaded, timeout=30, what="the engine to load the policy")
        r = await c.post("/v1/authz/commands", json={"commands": [
            {"op": "create_policy_class", "name": "audit"}]})  # fmt: skip
        assert r.status_code == 200, r.text
        nodes = (await c.get("/v1/authz/statistics")).json()["nodes"]
        leaf = _leaf(app)
        before = await state(app)
        done = await run(
            "backup", str(archive), "--passphrase-file", str(secret), server=app.api_url
        )
        assert done.exit_code == 0, done.output
        assert f"wrote {archive}" in done.stdout and "the CA (encrypted)" in done.stdout
    assert archive.stat().st_mode & 0o777 == 0o600
    text = archive.read_text()
    assert "PRIVATE KEY" not in text and "AccessCommand" in text

    # a wrong passphrase changes nothing: no store, no CA written
    (tmp_path / "wrong").write_text("not the passphrase\n")
    wrong = await run("restore", str(archive), "--data-dir", str(two),
                      "--passphrase-file", str(tmp_path / "wrong"))  # fmt: skip
    assert wrong.exit_code == 1 and "wrong passphrase" in wrong.stderr, wrong.output
    assert not (two / "gossamer.db").exists() and not (two / "ca").exists()

    done = await run("restore", str(archive), "--data-dir", str(two),
                     "--passphrase-file", str(secret))  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "restored" in done.stdout and "NGAC journal entries" in done.stdout
    assert (two / "ca" / "root-key.pem").stat().st_mode & 0o777 == 0o600
    shutil.copy(one / ADMIN_TOKEN_FILE, two / ADMIN_TOKEN_FILE)  # the operator keeps theirs

    async with running_control_plane(two) as app, api_client(app, timeout=10) as c:
        assert await state(app) == before
        assert await decision(c, WEB, "POST") == "allow"
        assert await decision(c, CRON, "POST") == "deny"
        assert (await c.get("/v1/authz/statistics")).json()["nodes"] == nodes
        assert app.ca is not None
        roots = x509.load_pem_x509_certificates(app.ca.trust_bundle_pem())
        assert any(signed_by(leaf, root) for root in roots)
        routes = (await c.get("/v1/resources/routes")).json()["items"]
        assert [r["metadata"]["name"] for r in routes] == ["edge"]

    # a store that holds something is refused, naming it; nothing changed
    again = await run("restore", str(archive), "--data-dir", str(two),
                      "--passphrase-file", str(secret))  # fmt: skip
    assert again.exit_code == 1, again.output
    assert "is not empty: it holds" in again.stderr and "Route default/edge" in again.stderr


async def test_a_read_only_token_cannot_take_a_backup(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app, api_client(app) as c:
        r = await c.post("/v1/operator-tokens", json={"name": "viewer", "readOnly": True})
        assert r.status_code in (200, 201), r.text
        token = r.json()["token"]
        r = await c.post(
            "/v1/backup",
            json={"passphrase": PASS},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 403, r.text
        r = await c.post("/v1/backup", json={"passphrase": "short"})
        assert r.status_code == 400 and "at least 8" in r.text, r.text
