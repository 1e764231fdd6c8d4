"""``gossamer token create --operator --namespace NS [--rights ...]`` through the real CLI
against a real ``gossamer control-plane`` process: a token that may apply in team-a applies
there, gets the 403's reason for team-b, and reads only team-a (issue 11)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gossamer.testing.controlplane import admin_token
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GOSSAMER = str(Path(sys.executable).parent / "gossamer")


def service(name: str, namespace: str) -> str:
    return f"""apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  ports: [{{name: http, port: 8080}}]
"""


@contextlib.asynccontextmanager
async def control_plane(tmp_path: Path) -> AsyncIterator[str]:
    """``gossamer control-plane`` as an operator starts it; yields its API URL."""
    proc = await asyncio.create_subprocess_exec(
        GOSSAMER, "control-plane", "--data-dir", str(tmp_path / "data"),
        "--api-addr", "127.0.0.1:0", "--xds-addr", f"127.0.0.1:{free_port()}",
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=(tmp_path / "cp.log").open("wb"),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        assert "API https://" in line, f"unexpected start-up output: {line!r}"
        yield line.split("API ", 1)[1].split()[0]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def gossamer(server: str, token: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "GOSSAMER_SERVER": server, "GOSSAMER_TOKEN": token,
           "HOME": "/nonexistent", "COLUMNS": "250", "NO_COLOR": "1"}  # fmt: skip
    env.pop("XDG_CONFIG_HOME", None)
    proc = await asyncio.create_subprocess_exec(
        GOSSAMER, *args, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_namespaced_token_from_the_cli(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(service("cart", "team-a"))
    b.write_text(service("pay", "team-b"))
    async with control_plane(tmp_path) as server:
        admin = admin_token(tmp_path / "data")
        code, out, err = await gossamer(
            server, admin, "token", "create", "--operator", "--name", "ta",
            "--namespace", "team-a", "-o", "json",
        )  # fmt: skip
        assert code == 0, err
        created = json.loads(out)
        assert created["kind"] == "namespaced" and created["rights"] == ["read", "apply", "delete"]
        ta = created["token"]

        code, out, err = await gossamer(server, admin, "apply", "-f", str(b))
        assert code == 0, err
        code, out, err = await gossamer(server, ta, "apply", "-f", str(a))
        assert code == 0, out + err
        code, out, err = await gossamer(server, ta, "apply", "-f", str(b))
        assert code == 1, out + err
        said = " ".join((out + err).split())  # rich wraps long lines
        assert "token 'ta'" in said and "'apply' on kind Service in namespace 'team-b'" in said
        assert "--namespace team-b --rights apply" in said, said

        code, out, err = await gossamer(server, ta, "get", "services")
        assert code == 0, err
        assert "cart" in out and "pay" not in out, out
        code, out, err = await gossamer(server, ta, "get", "services", "-n", "team-b")
        assert code == 1 and "'read'" in " ".join((out + err).split()), out + err

        code, out, err = await gossamer(
            server, admin, "token", "create", "--operator", "--name", "r",
            "--namespace", "team-b", "--rights", "read",
        )  # fmt: skip
        assert code == 0, err
        code, out, err = await gossamer(server, admin, "token", "list", "--operator")
        assert code == 0, err
        rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
        assert "namespaced" in rows["ta"] and "read, apply, delete in team-a" in rows["ta"]
        assert "read in team-b" in rows["r"] and "everything" in rows["admin"]

        code, out, err = await gossamer(
            server, admin, "token", "create", "--operator", "--name", "w",
            "--namespace", "team-a", "--rights", "read,write",
        )  # fmt: skip
        assert code != 0 and "rights[1]" in out + err and "write" in out + err, out + err
        code, out, err = await gossamer(
            server, admin, "token", "create", "--service", "web",
            "--namespace", "a", "--namespace", "b",
        )  # fmt: skip
        assert code != 0 and "one --namespace" in out + err, out + err
