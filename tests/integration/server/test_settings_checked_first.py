"""A bad ``--ratelimit``, ``--ratelimit-listen``, ``--ratelimit-redis``, ``--authz-service`` or
``--authz-listen`` is refused naming the flag before the control plane opens or creates
anything: no data directory, no store, no CA (``server.settings_check``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from gossamer.errors import ConfigError
from gossamer.server.app import create_app
from gossamer.server.authz_child import AuthzSettings
from gossamer.server.rate_limit import RateLimitSettings
from gossamer.server.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BAD = {
    "--ratelimit": Settings(Path(), rate_limit=RateLimitSettings("bogus")),
    "--ratelimit-listen": Settings(Path(), rate_limit=RateLimitSettings(listen=("0.0.0.0", 0))),
    "--ratelimit-listen ": Settings(
        Path(), rate_limit=RateLimitSettings(listen=("10.1.2.3", 9000))
    ),
    "--ratelimit-redis": Settings(Path(), rate_limit=RateLimitSettings(redis="http://x:1/0")),
    "--authz-service": Settings(Path(), authz_service=AuthzSettings("127.0.0.1:port")),
    "--authz-listen": Settings(Path(), authz_service=AuthzSettings(listen=("::", 0))),
    "--authz-listen ": Settings(Path(), authz_service=AuthzSettings(listen=("192.0.2.1", 0))),
}


@pytest.mark.parametrize("flag", list(BAD))
async def test_a_bad_child_service_setting_is_refused_before_anything_is_opened(
    tmp_path: Path, flag: str
) -> None:
    data = tmp_path / "cp"
    settings = Settings(
        data,
        api_addr=("127.0.0.1", 0),
        xds_addr=("127.0.0.1", 0),
        rate_limit=BAD[flag].rate_limit,
        authz_service=BAD[flag].authz_service,
    )
    with pytest.raises(ConfigError) as refused:
        async with create_app(settings):
            pass
    assert str(refused.value).startswith(flag.strip()), str(refused.value)
    assert not data.exists()


async def test_the_command_refuses_a_bad_authz_service_and_creates_no_data_dir(
    tmp_path: Path,
) -> None:
    data = tmp_path / "cp"
    argv = [sys.executable, "-c", "from gossamer.cli.main import run; run()", "control-plane"]
    argv += ["--data-dir", str(data), "--api-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0"]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        "--authz-service",
        "decider",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    assert proc.returncode != 0
    assert "--authz-service: 'decider' is not auto, off or HOST:PORT" in out.decode()
    assert not data.exists()
