"""Tokens across a root rotation, through the real CLI against a real control plane: an
operator who holds only the admin token (no CA file) follows ``gossamer ca rotate`` to
its end (the API's certificate moves to the new root mid-way: the CLI trusts the new
root because it learnt it over a connection it had verified); ``admin.token`` names the
new root as soon as the API's certificate does (no restart), and the CLI prints what
other tokens need; a token still naming the retired root is refused before anything
secret is sent, with a message saying exactly what to do, and works again with
``--ca-file`` or re-written for the new root."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from tests.integration.agent.agents import GOSSAMER

from gossamer.ca.trust import compose_token, fingerprints, token_fingerprint, token_secret
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.controlplane import admin_token, apply_yaml, ca_file, running_control_plane

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(400),
]

MESH = """
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {name: default}
spec: {trustDomain: shop.local, mtls: {certificateTTL: 1m}}
"""


async def cli(
    app: ControlPlaneApp,
    *args: str,
    token: str,
    ca: Path | None = None,
    timeout: float = 60,  # noqa: ASYNC109
) -> tuple[int, str]:
    """``gossamer ARGS --server <app>`` with ``GOSSAMER_TOKEN`` (and ``GOSSAMER_CA_FILE``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOSSAMER_")}
    env |= {"GOSSAMER_TOKEN": token, "COLUMNS": "250", "NO_COLOR": "1"}
    env["XDG_CONFIG_HOME"] = str(app.settings.data_dir.parent / "no-config")
    if ca is not None:
        env["GOSSAMER_CA_FILE"] = str(ca)
    proc = await asyncio.create_subprocess_exec(
        GOSSAMER, *args, "--server", app.api_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    async with asyncio.timeout(timeout):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_tokens_after_a_root_rotation(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        await apply_yaml(app, MESH, wait=False)
        data = app.settings.data_dir
        admin = admin_token(data)
        old = token_fingerprint(admin)
        code, out = await cli(app, "token", "create", "--operator", "--name", "alice", token=admin)
        assert code == 0, out
        alice = out.splitlines()[0].strip()
        assert token_fingerprint(alice) == old

        # the operator follows the rotation holding only the admin token
        code, out = await cli(app, "ca", "rotate", "--timeout", "300", token=admin, timeout=330)
        assert code == 0, out
        assert "root rotation done" in out, out
        (new,) = fingerprints(ca_file(app).read_bytes())
        assert new != old
        # what to do with tokens made before, with the new root's fingerprint
        assert f"gsm1.{new}." in out and "admin.token" in out and "join token" in out, out

        # admin.token names the new root without a restart, and works
        repinned = admin_token(data)
        assert token_fingerprint(repinned) == new
        assert token_secret(repinned) == token_secret(admin)
        code, out = await cli(app, "ca", "status", token=repinned)
        assert code == 0, out

        # a token naming the retired root: refused before sending it, saying what to do
        code, out = await cli(app, "ca", "status", token=alice)
        assert code == 1, out
        for advice in ("rotated", "admin.token", "--ca-file", "token create"):
            assert advice in out, out
        assert "nothing secret was sent" in out.lower(), out
        # its secret still works: verified with the CA file, or re-written for the new root
        code, out = await cli(app, "ca", "status", token=alice, ca=ca_file(app))
        assert code == 0, out
        code, out = await cli(app, "ca", "status", token=compose_token(new, token_secret(alice)))
        assert code == 0, out
