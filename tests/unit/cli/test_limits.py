"""The CLI with slow servers and hostile files: a slow apply is waited for, a timed-out one
is reported as of unknown fate (never "retry"), deep or huge YAML is a clear error (issue 7
R3, R8)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gossamer.cli.client import ApiClient
from gossamer.cli.main import app
from gossamer.controlplane.service import ApplyResult
from gossamer.model import Resource
from gossamer.polling import wait_until
from gossamer.testing.fake_controlplane import FakeControlPlane

from .conftest import ApiServer, serving
from .files import SHOP


class SlowControlPlane(FakeControlPlane):
    """Commits every apply, but only after ``delay`` seconds (as 5,000 services take)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def apply(self, resources: Sequence[Resource], **options: object) -> ApplyResult:
        await asyncio.sleep(self.delay)
        return await super().apply(resources, **options)  # type: ignore[arg-type]


@pytest.fixture
def slow() -> Iterator[ApiServer]:
    with serving(SlowControlPlane(delay=1.5)) as api:
        yield api


def test_apply_waits_longer_than_a_read_may_take(slow: ApiServer) -> None:
    from gossamer.model import parse_yaml

    manifests = [r.to_manifest() for r in parse_yaml(SHOP)]
    with ApiClient(slow.url, timeout=0.5) as api:  # reads give up after 0.5 s
        result = api.apply(manifests)
    assert result["revision"] == 1


def test_an_apply_that_outlives_its_timeout_is_reported_as_unknown(
    slow: ApiServer, shop_file: Path
) -> None:
    runner = CliRunner(env={"GOSSAMER_SERVER": slow.url, "COLUMNS": "250", "NO_COLOR": "1"})
    result = runner.invoke(app, ["apply", "--timeout", "0.5", "-f", str(shop_file)])
    assert result.exit_code == 1, result.output
    message = " ".join(result.stderr.split())
    assert "did not answer POST /v1/apply within 0.5 s" in message
    assert "it may or may not have been stored" in message
    assert f"gossamer apply --dry-run -f {shop_file}" in message
    assert "retry" not in message.lower()
    # and indeed the server went on and stored it
    asyncio.run(wait_until(lambda: slow.fake.revision == 1, timeout=10, what="the apply"))


def test_deep_yaml_is_a_clear_error_not_a_traceback(offline: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(SHOP.split("---")[0] + "x: " + "[" * 50_000 + "]" * 50_000 + "\n")
    result = offline.invoke(app, ["validate", "-f", str(path)])
    assert result.exit_code == 1, result.output
    assert "deep.yaml: line " in result.stderr
    assert "nested more than 100 levels deep" in result.stderr
    assert "Traceback" not in result.output and "RecursionError" not in result.output


def test_the_yaml_node_limit_is_a_flag(offline: CliRunner, shop_file: Path) -> None:
    result = offline.invoke(app, ["validate", "--max-yaml-nodes", "10", "-f", str(shop_file)])
    assert result.exit_code == 1, result.output
    assert "more than 10 YAML nodes" in result.stderr
    assert offline.invoke(app, ["validate", "-f", str(shop_file)]).exit_code == 0
