"""``gossamer token create --operator``, ``token list --operator`` and ``token revoke``
against a real control plane, and what a CLI user sees without a token or with a read-only
one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from gossamer.cli.main import app as cli
from gossamer.testing.controlplane import admin_token, running_control_plane

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SERVICE = """apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: cart}
spec:
  ports: [{name: http, port: 8080}]
"""


async def gossamer(server: str, token: str | None, *args: str) -> Result:
    # GOSSAMER_TOKEN None: unset (running_control_plane exported the admin token)
    env = {"GOSSAMER_SERVER": server, "GOSSAMER_TOKEN": token, "HOME": "/nonexistent",
           "XDG_CONFIG_HOME": None, "COLUMNS": "250", "NO_COLOR": "1"}  # fmt: skip
    runner = CliRunner(env=env)
    return await asyncio.to_thread(lambda: runner.invoke(cli, list(args)))


async def test_operator_tokens_from_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "cp"
    file = tmp_path / "cart.yaml"
    file.write_text(SERVICE)
    async with running_control_plane(data) as app:
        server, admin = app.api_url, admin_token(data)

        missing = await gossamer(server, None, "get", "services")
        assert missing.exit_code == 1
        assert "missing credential: pass --token, set GOSSAMER_TOKEN" in missing.output
        assert str(data / "admin.token") in missing.output

        created = await gossamer(
            server, admin, "token", "create", "--operator", "--read-only", "--name", "dash",
            "-o", "json",
        )  # fmt: skip
        assert created.exit_code == 0, created.output
        reader = json.loads(created.stdout)["token"]

        listed = await gossamer(server, reader, "token", "list", "--operator")
        assert listed.exit_code == 0, listed.output
        assert "dash" in listed.stdout and "read-only" in listed.stdout
        assert "token:dash" in listed.stdout and reader not in listed.stdout

        refused = await gossamer(server, None, "apply", "-f", str(file), "--token", reader)
        assert refused.exit_code == 1
        assert "read-only token 'dash'" in refused.output
        applied = await gossamer(server, None, "apply", "-f", str(file), "--token", admin)
        assert applied.exit_code == 0, applied.output
        read = await gossamer(server, reader, "get", "services")
        assert read.exit_code == 0 and "cart" in read.stdout

        revoked = await gossamer(server, admin, "token", "revoke", "dash")
        assert revoked.exit_code == 0, revoked.output
        after = await gossamer(server, reader, "get", "services")
        assert after.exit_code == 1 and "was revoked" in after.output
