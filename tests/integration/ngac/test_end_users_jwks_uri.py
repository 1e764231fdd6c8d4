"""A Mesh issuer whose keys are at a ``jwks.uri`` (issue 11, end users), through real agents
and Envoys: the control plane fetches the JWKS over HTTPS from an identity provider on
127.0.0.9 (its own CA, ``jwks.ca``) and sends the keys inline; no proxy reaches the
provider. Before the first fetch the issuer's tokens are refused (401); a key rotation at
the provider reaches the proxies within one refresh; the provider down, the last keys keep
working."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from tests.integration.agent.mtls_mesh import TD, two_hosts, wait_served

from gossamer import ports
from gossamer.polling import wait_until
from gossamer.testing.controlplane import apply_yaml
from gossamer.testing.identity_provider import JwksServer
from gossamer.testing.jwt_tokens import TokenIssuer
from gossamer.translate.ext_authz import AuthzService

from .ngac_mesh import manifests
from .test_end_users_mesh import _decision_point, _get, _policy, _status

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(300),
]

ISSUER = "https://idp.shop.example"
A, B = TokenIssuer(ISSUER, kid="a"), TokenIssuer(ISSUER, kid="b")
CLAIMS = {"groups": ["customers"]}


def _mesh(idp: JwksServer) -> str:
    ca = json.dumps(idp.ca_pem)
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
      jwks: {{uri: "{idp.uri}", ca: {ca}, refreshInterval: 1s}}
      claimsToAttributes: {{groups: {{customers: customers}}}}
"""


async def test_keys_from_a_uri_are_fetched_rotated_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "gossamer.controlplane.jwks_refresh")
    idp = JwksServer(A.jwks())
    async with two_hosts(tmp_path, manifests("enforce") + "---" + _policy()) as mesh:
        await wait_served(mesh)
        port = ports.free_port("127.0.0.1")
        point = _decision_point(tmp_path, mesh, port)
        await point.start()
        try:
            mesh.app.plane.publisher.translator.authz_service = AuthzService("127.0.0.1", port)
            a_token = A.token("bob", "shop", claims=CLAIMS)
            b_token = B.token("bob", "shop", claims=CLAIMS)
            # the provider is down when the Mesh names it: its tokens are refused, never
            # accepted (the route now requires a valid token; the issuer has no keys)
            await apply_yaml(mesh.app, _mesh(idp))
            await wait_until(
                lambda: _status(mesh, "/api/orders/7", a_token, 401),
                timeout=60,
                what="a token of an issuer with no keys yet refused",
            )
            assert "failing since" in caplog.text
            # up: its keys are fetched (retried within seconds) and reach the proxies
            await idp.start()
            await wait_until(
                lambda: _status(mesh, "/api/orders/7", a_token, 200),
                timeout=60,
                what="bob's token signed by key a granted",
            )
            assert (await _get(mesh, "/api/orders/7", b_token)).status_code == 401
            # the provider rotates to key b (a removed): within a refresh b works, a not
            idp.keys = B.jwks()
            await wait_until(
                lambda: _status(mesh, "/api/orders/7", b_token, 200),
                timeout=30,
                what="bob's token signed by key b granted after the rotation",
            )
            assert (await _get(mesh, "/api/orders/7", a_token)).status_code == 401
            # the provider down: fetches fail, and the proxies keep key b
            await idp.stop()
            failing = caplog.text.count("proxies keep the keys fetched at")
            await wait_until(
                lambda: _more(caplog, failing),
                timeout=30,
                what="a failed refresh logged",
            )
            assert (await _get(mesh, "/api/orders/7", b_token)).status_code == 200
            assert (await _get(mesh, "/api/orders/7", a_token)).status_code == 401
        finally:
            await asyncio.shield(point.stop(grace=5))
            await idp.stop()


async def _more(caplog: pytest.LogCaptureFixture, than: int) -> bool:
    return caplog.text.count("proxies keep the keys fetched at") > than
