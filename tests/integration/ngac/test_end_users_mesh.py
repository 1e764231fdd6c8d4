"""End users by JWT decided by ``gossamer authz serve`` over Envoy's ext_authz, through real
agents and Envoys with strict mTLS (issue 11, dynamic mode).

web's sidecar calls reviews (web may GET reviews except /admin: the compiled RBAC); bob's
token (group ``customers``) is granted GET under ``/api/orders`` only. The decision point
runs as its own process (``gossamer authz serve --server``) following the control plane's
graph; Envoy fails closed when it is down.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest
from tests.integration.agent.mtls_mesh import TD, Mesh, two_hosts, wait_served

from gossamer import ports
from gossamer.envoy.process import ManagedProcess
from gossamer.polling import wait_until
from gossamer.testing.controlplane import apply_yaml, ca_file, operator_env
from gossamer.testing.jwt_tokens import TokenIssuer
from gossamer.translate.ext_authz import AuthzService

from .ngac_mesh import manifests, policy

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(300),
]

ISSUER = "https://idp.shop.example"
IDP = TokenIssuer(ISSUER)
FOREIGN = TokenIssuer("https://evil.example")
GRANT = '{userAttribute: customers, target: "svc:default/reviews:/api/orders", rights: [GET]}'
REVOKE = '{name: no-customers, subject: customers, rights: [GET], include: ["svc:default/reviews:/api/orders"]}'  # noqa: E501


def _policy(*prohibitions: str) -> str:
    text = policy(*prohibitions)
    text = text.replace("nobody: [shop]}", "nobody: [shop], customers: [shop]}")
    return text.replace("  associations:\n", f"  associations:\n  - {GRANT}\n")


def _mesh_with_issuer() -> str:
    jwks = json.dumps(IDP.jwks())
    return f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec:
  trustDomain: {TD}
  mtls: {{mode: strict}}
  authorization: {{mode: enforce}}
  authentication:
    jwt:
    - issuer: {ISSUER}
      audiences: [shop]
      jwks: {{inline: {jwks}}}
      claimsToAttributes: {{groups: {{customers: customers}}}}
"""


async def _get(mesh: Mesh, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return await client.get(f"{mesh.outbound}{path}", headers=headers)


def _decision_point(tmp_path: Path, mesh: Mesh, port: int) -> ManagedProcess:
    argv = [sys.executable, "-c", "from gossamer.cli.main import run; run()"]
    argv += ["authz", "serve", "--listen", f"127.0.0.1:{port}", "--server", mesh.app.api_url]
    argv += ["--ca-file", str(ca_file(mesh.app))]
    return ManagedProcess(
        argv, log_path=tmp_path / "authz.log", name="authz serve", env=operator_env(mesh.app)
    )


async def _status(mesh: Mesh, path: str, token: str | None, want: int) -> bool:
    return (await _get(mesh, path, token)).status_code == want


async def test_a_jwt_user_is_decided_by_the_decision_point(tmp_path: Path) -> None:
    async with two_hosts(tmp_path, manifests("enforce") + "---" + _policy()) as mesh:
        await wait_served(mesh)
        port = ports.free_port("127.0.0.1")
        point = _decision_point(tmp_path, mesh, port)
        await point.start()
        try:
            mesh.app.plane.publisher.translator.authz_service = AuthzService("127.0.0.1", port)
            await apply_yaml(mesh.app, _mesh_with_issuer())
            bob = IDP.token("bob", "shop", claims={"groups": ["customers"]})
            await wait_until(
                lambda: _status(mesh, "/api/orders/7", bob, 200),
                timeout=60,
                what="bob allowed under /api/orders",
            )
            # granted GET on /api/orders only: another prefix is denied, by the decision point
            other = await _get(mesh, "/reviews/1", bob)
            assert other.status_code == 403, other.text
            assert f"jwt:{ISSUER}#bob" in other.text
            # without a token, web's own grant decides (the compiled RBAC)
            assert (await _get(mesh, "/reviews/1")).status_code == 200
            # a method outside the grant
            async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
                posted = await client.post(
                    f"{mesh.outbound}/api/orders/7", headers={"Authorization": f"Bearer {bob}"}
                )
            assert posted.status_code == 403
            # expired, foreign issuer: 401 from the token check; another audience: its 403
            expired = IDP.token("bob", "shop", lifetime_s=-600, claims={"groups": ["customers"]})
            assert (await _get(mesh, "/api/orders/7", expired)).status_code == 401
            foreign = FOREIGN.token("bob", "shop", claims={"groups": ["customers"]})
            assert (await _get(mesh, "/api/orders/7", foreign)).status_code == 401
            other_audience = await _get(mesh, "/api/orders/7", IDP.token("bob", "else"))
            assert other_audience.status_code == 403
            assert "Audiences in Jwt are not allowed" in other_audience.text
            # a user the graph does not know, with no mapped group, holds nothing
            alice = IDP.token("alice", "shop", claims={"groups": ["visitors"]})
            assert (await _get(mesh, "/api/orders/7", alice)).status_code == 403
            # the grant revoked: the change reaches the decision point, the next request is denied
            await apply_yaml(mesh.app, _policy(REVOKE))
            await wait_until(
                lambda: _status(mesh, "/api/orders/7", bob, 403),
                timeout=30,
                what="bob denied after the revocation",
            )
            await apply_yaml(mesh.app, _policy())
            await wait_until(
                lambda: _status(mesh, "/api/orders/7", bob, 200),
                timeout=30,
                what="bob allowed again",
            )
            # the decision point down: requests with a token fail closed, others are unaffected
            await point.stop(grace=5)
            down = await _get(mesh, "/api/orders/7", bob)
            assert down.status_code == 403, down.text
            assert (await _get(mesh, "/reviews/1")).status_code == 200
        finally:
            await asyncio.shield(point.stop(grace=5))
