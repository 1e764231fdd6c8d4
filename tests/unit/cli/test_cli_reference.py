"""docs/cli.md is what ``scripts/cli-reference`` generates from the command tree now."""

from __future__ import annotations

from pathlib import Path

from gossamer.cli.main import app
from gossamer.cli.reference import cli_reference

DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"


def test_the_cli_reference_is_current() -> None:
    assert DOC.read_text() == cli_reference(app), (
        "docs/cli.md is out of date: run scripts/cli-reference"
    )


def test_the_reference_names_every_command_with_its_options() -> None:
    text = cli_reference(app)
    for heading in ("## `gossamer proxy-status`", "## `gossamer agent status`"):
        assert heading in text
    assert "| `-o, --output` | table\\|json\\|yaml | `table` |" in text
    assert "--json" not in text.split("## `gossamer agent status`")[1].split("## ")[0]
