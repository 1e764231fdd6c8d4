from __future__ import annotations

from typer.testing import CliRunner

import gossamer
from gossamer.cli.main import app


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"gossamer {gossamer.__version__}"
