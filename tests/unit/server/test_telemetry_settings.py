"""``--telemetry``: ``off`` configures nothing, ``auto`` reserves loopback addresses and
makes a 0600 token kept across starts, a bad mode or a non-loopback plaintext listener is
refused naming the option, HOST:PORT runs nothing here."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from gossamer.errors import ConfigError
from gossamer.server.telemetry_child import TelemetrySettings, open_telemetry

pytestmark = pytest.mark.asyncio


async def test_off_configures_no_service_and_no_child(tmp_path: Path) -> None:
    t = await open_telemetry(TelemetrySettings("off"), tmp_path, FastAPI(), None)
    assert t.address is None and t.child is None and t.upstream.url is None
    assert not (tmp_path / "telemetry.token").exists()


async def test_auto_reserves_loopback_ports_and_keeps_a_private_token(tmp_path: Path) -> None:
    t = await open_telemetry(TelemetrySettings(), tmp_path, FastAPI(), None)
    assert t.address is not None and t.address.host == "127.0.0.1" and t.address.port > 0
    assert t.child is not None and t.upstream.url is not None
    token = tmp_path / "telemetry.token"
    assert token.stat().st_mode & 0o777 == 0o600 and len(token.read_text().strip()) >= 16
    first = token.read_text()
    argv = t.child.argv()
    assert argv[argv.index("--data") + 1] == str(tmp_path / "telemetry.sqlite")
    assert argv[argv.index("--token-file") + 1] == str(token)
    assert argv[argv.index("--listen") + 1] == f"127.0.0.1:{t.address.port}"
    again = await open_telemetry(TelemetrySettings(), tmp_path, FastAPI(), None)
    assert again.child is not None and token.read_text() == first
    assert await again.upstream.token() == await t.upstream.token()


async def test_elsewhere_runs_no_child(tmp_path: Path) -> None:
    settings = TelemetrySettings("10.1.2.3:8083", http=("10.1.2.3", 8084))
    t = await open_telemetry(settings, tmp_path, FastAPI(), None)
    assert t.child is None and t.address is not None
    assert (t.address.host, t.address.port) == ("10.1.2.3", 8083)
    assert t.upstream.url == "http://10.1.2.3:8084"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (TelemetrySettings("sometimes"), "--telemetry"),
        (TelemetrySettings(listen=("10.1.2.3", 0)), "--telemetry-listen"),
        (TelemetrySettings(http=("10.1.2.3", 0)), "--telemetry-http"),
        (TelemetrySettings(listen=("0.0.0.0", 0)), "--telemetry-listen"),
    ],
)
async def test_bad_settings_are_refused_naming_the_option(
    tmp_path: Path, settings: TelemetrySettings, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        await open_telemetry(settings, tmp_path, FastAPI(), None)
    assert not (tmp_path / "telemetry.token").exists()
