"""``gossamer control-plane`` as a user runs it: it refuses a store that existed and is now
empty (0 bytes) instead of starting an empty mesh (issue 7, R1), and with umask 022 its data
dir is 0700 and the store, its WAL and the audit trail 0600 (R6)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import ssl
import stat
import sys
from pathlib import Path

import httpx
import pytest

from gossamer.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

POLICY = {
    "apiVersion": "gossamer.dev/v1",
    "kind": "AccessPolicy",
    "metadata": {"name": "p"},
    "spec": {
        "policyClasses": ["rbac"],
        "userAttributes": {"staff": ["rbac"]},
        "objectAttributes": {"api": ["rbac"]},
        "users": {"web": ["staff"]},
        "objects": {"cart:/items": ["api"]},
        "associations": [{"userAttribute": "staff", "target": "api", "rights": ["GET"]}],
    },
}
CHECK = {"user": "web", "target": "cart:/items", "right": "GET"}
GOSSAMER = str(Path(sys.executable).parent / "gossamer")


def _start(data: Path) -> asyncio.Future[asyncio.subprocess.Process]:
    command = (
        f"umask 022; exec {GOSSAMER} control-plane --data-dir {data} "
        "--api-addr 127.0.0.1:0 --xds-addr 127.0.0.1:0"
    )
    return asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            "sh",
            "-c",
            command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"},
        )
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_refuses_a_zero_byte_store_and_keeps_files_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = await _start(data)
    assert proc.stdout is not None
    try:
        seen: list[str] = []
        api = None
        async with asyncio.timeout(60):  # log lines (stderr) may come before the address
            while api is None:
                line = (await proc.stdout.readline()).decode()
                assert line, f"the control plane exited: {seen}"
                seen.append(line)
                api = re.search(r"API (https://\S+)", line)
        token = (data / "admin.token").read_text().strip()
        async with httpx.AsyncClient(
            base_url=api.group(1),
            trust_env=False,
            verify=ssl.create_default_context(cafile=data / "ca" / "root-cert.pem"),
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            r = await client.post("/v1/apply", json={"manifests": [POLICY]})
            assert r.status_code == 200, r.text

            async def decided() -> bool:
                r = await client.post("/v1/authz/check", json=CHECK)
                return r.status_code == 200

            await wait_until(decided, timeout=30, what="a decision (audited)")
        audit = data / "authz-audit.jsonl"
        await wait_until(audit.exists, timeout=10, what="the audit trail written")
        assert _mode(data) == 0o700
        files = {n: _mode(data / n) for n in sorted(os.listdir(data))}
        assert {
            "admin.token": 0o600,
            "authz-audit.jsonl": 0o600,
            "ca": 0o700,
            "gossamer.db": 0o600,
            "gossamer.db-wal": 0o600,
            "gossamer.db.id": 0o600,
        }.items() <= files.items(), files
        # and whatever else it keeps there (its children's tokens, logs and stores) too
        assert all(
            mode == (0o700 if (data / n).is_dir() else 0o600) for n, mode in files.items()
        ), files
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0

    (data / "gossamer.db").write_bytes(b"")  # a full disk, a bad restore, a stray `>`
    proc = await _start(data)
    assert proc.stdout is not None
    out = ""
    try:
        async with asyncio.timeout(60):
            while line := (await proc.stdout.readline()).decode():
                out += line
                # the defect: it served an empty mesh in place of the store it had
                assert "gossamer control plane: API" not in line, out
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 1, out
    text = " ".join(out.split())
    assert f"refusing to open the store {data / 'gossamer.db'}: it is empty (0 bytes)" in text
    assert "copy your backup over" in text and f"delete {data / 'gossamer.db.id'}" in text
    assert (data / "gossamer.db").stat().st_size == 0  # left for the operator to restore
