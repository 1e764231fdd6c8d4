"""``gossamer ca status`` against a real control plane: the root (or the plugged
intermediate and its offline root) with subject, serial and expiry, never a key, and a
warning ahead of expiry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from tests.unit.ca.certs import ca_cert, key_pem, pem
from typer.testing import CliRunner, Result

from gossamer.cli.ca import expiry_warnings
from gossamer.cli.main import app as cli
from gossamer.testing.controlplane import running_control_plane

pytestmark = [pytest.mark.integration]


async def _status(server: str, *args: str) -> Result:
    runner = CliRunner(env={"GOSSAMER_SERVER": server, "COLUMNS": "250", "NO_COLOR": "1"})
    return await asyncio.to_thread(lambda: runner.invoke(cli, ["ca", "status", *args]))


@pytest.mark.asyncio
async def test_prints_the_generated_root(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        result = await _status(app.api_url)
    assert result.exit_code == 0, result.output
    root = x509.load_pem_x509_certificate((tmp_path / "cp" / "ca" / "root-cert.pem").read_bytes())
    assert "trust domain gossamer.local; signing with the root" in result.stdout
    assert root.subject.rfc4514_string() in result.stdout
    assert f"{root.serial_number:x}" in result.stdout
    assert f"{root.not_valid_after_utc:%Y-%m-%d %H:%M:%S}" in result.stdout
    assert "warning" not in result.output and "PRIVATE" not in result.output


@pytest.mark.asyncio
async def test_warns_when_the_intermediate_expires_within_30_days(tmp_path: Path) -> None:
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = ca_cert("Offline root", root_key, lifetime=timedelta(days=3650))
    key = ec.generate_private_key(ec.SECP256R1())
    inter = ca_cert("Mesh intermediate", key, (root, root_key), lifetime=timedelta(days=10))
    directory = tmp_path / "cp" / "ca"
    directory.mkdir(parents=True)
    (directory / "ca-cert.pem").write_bytes(pem(inter))
    (directory / "ca-key.pem").write_bytes(key_pem(key))
    (directory / "root-cert.pem").write_bytes(pem(root))
    async with running_control_plane(tmp_path / "cp") as app:
        result = await _status(app.api_url)
        as_json = await _status(app.api_url, "-o", "json")
    assert result.exit_code == 0, result.output
    assert "signing with an intermediate (root key offline)" in result.stdout
    assert "CN=Offline root" in result.stdout and "CN=Mesh intermediate" in result.stdout
    assert "warning: intermediate CN=Mesh intermediate" in result.stderr
    assert "expires in 9 days" in result.stderr  # 10 days from 5 minutes ago
    assert "CN=Offline root" not in result.stderr
    assert '"intermediates"' in as_json.stdout and "PRIVATE" not in as_json.output


def test_an_expired_certificate_is_an_error() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    body = {
        "roots": [
            {"role": "root", "subject": "CN=r", "serial": "1a", "notAfter": "2029-12-31T00:00:00Z"}
        ],
        "intermediates": [],
    }
    lines, expired = expiry_warnings(body, now)
    assert expired
    assert lines == [
        "error: root CN=r (serial 1a) EXPIRED on 2029-12-31 00:00: no certificate from it "
        "verifies; rotate the root or plug a new intermediate now"
    ]
    body["roots"][0]["notAfter"] = "2030-03-01T00:00:00Z"
    assert expiry_warnings(body, now) == ([], False)
