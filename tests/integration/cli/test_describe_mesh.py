"""``gossamer describe mesh`` (``GET /v1/describe/mesh``) shows what the control plane knows
of each ``jwks.uri`` issuer's keys where an operator looks, not only in its log: when a
fetch last succeeded, since when fetches fail and the last error (a real control plane, an
identity provider over HTTPS on 127.0.0.9 that goes down, the real CLI)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gossamer.agent.trust import CA_FILE_ENV
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing import running_control_plane
from gossamer.testing.controlplane import api_client, apply_yaml, ca_file, operator_env
from gossamer.testing.identity_provider import JwksServer
from gossamer.testing.jwt_tokens import TokenIssuer

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

ISSUER = "https://idp.shop.example"


def _mesh(idp: JwksServer) -> str:
    return f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec:
  authentication:
    jwt:
    - issuer: {ISSUER}
      audiences: [shop]
      jwks: {{uri: "{idp.uri}", ca: {json.dumps(idp.ca_pem)}, refreshInterval: 1s}}
"""


async def _issuer(app: ControlPlaneApp) -> dict[str, Any]:
    async with api_client(app) as c:
        r = await c.get("/v1/describe/mesh")
    assert r.status_code == 200, r.text
    [issuer] = r.json()["issuers"]
    assert isinstance(issuer, dict)
    return issuer


async def _cli(app: ControlPlaneApp, *args: str) -> str:
    argv = [sys.executable, "-c", "from gossamer.cli.main import run; run()", "describe"]
    argv += ["mesh", "--server", app.api_url, *args]
    env = {**operator_env(app), CA_FILE_ENV: str(ca_file(app)), "COLUMNS": "250"}
    done = await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_describe_mesh_shows_a_failing_jwks_fetch(tmp_path: Path) -> None:
    idp = JwksServer(TokenIssuer(ISSUER, kid="a").jwks())
    await idp.start()
    try:
        async with running_control_plane(tmp_path / "cp") as app:
            await apply_yaml(app, _mesh(idp))

            async def fetched() -> dict[str, Any] | None:
                issuer = await _issuer(app)
                # (the keys show once their record is in the plane's model, just after)
                return issuer if issuer["fetch"]["lastSuccess"] and issuer["keys"] else None

            ok = await wait_until(fetched, timeout=30, what="the first fetch")
            assert ok["uri"] == idp.uri and ok["fetch"]["failingSince"] is None
            assert ok["keys"]["kids"] == ["a"]

            await idp.stop()

            async def failing() -> dict[str, Any] | None:
                issuer = await _issuer(app)
                return issuer if issuer["fetch"]["failingSince"] else None

            down = await wait_until(failing, timeout=30, what="a failed fetch shown")
            assert idp.uri in down["fetch"]["error"]
            assert down["fetch"]["failures"] >= 1
            # the last success stands (one more may have come in before the stop: the
            # refresh is every second), and it is not after the failures began
            last, since = down["fetch"]["lastSuccess"], down["fetch"]["failingSince"]
            assert ok["fetch"]["lastSuccess"] <= last <= since, (ok["fetch"], down["fetch"])
            # the proxies keep the keys fetched before
            assert down["keys"] == ok["keys"]

            text = await _cli(app)
            assert ISSUER in text and idp.uri in text
            assert "failing since" in text and down["fetch"]["failingSince"][:19] in text
            assert "last success" in text and "kid a" in text
            as_json = json.loads(await _cli(app, "-o", "json"))
            assert as_json["issuers"][0]["issuer"] == ISSUER
    finally:
        await idp.stop()
