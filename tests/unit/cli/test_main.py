"""Wiring: the control-plane hook, the authz sub-app, usage errors, the console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import gossamer.server.run
from gossamer.cli.main import app
from gossamer.errors import ConfigError


def test_control_plane_calls_the_run_hook_with_its_options(
    offline: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(gossamer.server.run, "main", lambda *a, **_: calls.append(a))
    result = offline.invoke(
        app,
        [
            "control-plane",
            "--data-dir",
            str(tmp_path),
            "--api-addr",
            "127.0.0.5:7071",
            "--xds-addr",
            "127.0.0.5:18001",
        ],
    )
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path, "127.0.0.5:7071", "127.0.0.5:18001")]
    assert offline.invoke(app, ["control-plane"]).exit_code == 0
    assert calls[1] == (Path(".gossamer"), "127.0.0.1:7070", "127.0.0.1:18000")


def test_control_plane_errors_are_one_line(
    offline: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise ConfigError("--api-addr: cannot listen on 127.0.0.1:7070: in use; pick another")

    monkeypatch.setattr(gossamer.server.run, "main", refuse)
    result = offline.invoke(app, ["control-plane"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: --api-addr: cannot listen on 127.0.0.1:7070: in use; pick another\n"
    )


@pytest.mark.parametrize("addr", ["7070", "localhost", "127.0.0.1:http", "127.0.0.1:70000"])
def test_addresses_are_host_port(offline: CliRunner, addr: str) -> None:
    result = offline.invoke(app, ["control-plane", "--api-addr", addr])
    assert result.exit_code == 2
    assert "is not HOST:PORT" in result.output


def test_authz_is_mounted(offline: CliRunner) -> None:
    result = offline.invoke(app, ["authz", "--help"])
    assert result.exit_code == 0
    assert "check" in result.stdout


def test_every_command_is_there(offline: CliRunner) -> None:
    result = offline.invoke(app, ["--help"])
    for command in (
        "control-plane",
        "apply",
        "get",
        "delete",
        "validate",
        "proxy-status",
        "proxy-config",
        "authz",
    ):
        assert command in result.stdout
    assert offline.invoke(app, ["frobnicate"]).exit_code == 2


def test_the_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "gossamer"
    path = tmp_path / "empty.yaml"
    path.write_text("apiVersion: gossamer.dev/v1\nkind: Mesh\nmetadata: {name: default}\n")
    done = subprocess.run(
        [str(script), "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "valid: 1 resource in 1 file\n"), done.stderr
