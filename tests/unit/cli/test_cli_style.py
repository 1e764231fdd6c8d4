"""One CLI style: every command's --help is free of Python type tags."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.core import TyperGroup
from typer.testing import CliRunner

from gossamer.agent.state import StateDir
from gossamer.cli.main import app

from .conftest import ApiServer
from .test_proxies import status

#: a Typer type tag: <bool>, <str>, <list[Path]>, <int range>, <table|json>
_TYPE_TAG = re.compile(r"<(bool|str|int|float|Path|list\[|[a-z]+\|)[^>]*>")


def _command_paths() -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        paths.append(path)
        if isinstance(cmd, TyperGroup):
            for name, sub in cmd.commands.items():
                if not sub.hidden:
                    walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "gossamer")
def test_help_shows_no_type_tags(path: list[str]) -> None:
    result = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"}).invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert not _TYPE_TAG.search(result.output), result.output


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "gossamer")
def test_help_marks_literals_as_markdown_not_restructuredtext(path: list[str]) -> None:
    result = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"}).invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "``" not in result.output, result.output


def test_a_group_lists_each_command_on_one_line_of_prose() -> None:
    """The list of commands shows each one's first paragraph as one line (Typer kept the
    docstring's line breaks, which cut a sentence wherever the source wrapped)."""
    root = typer.main.get_command(app)
    groups: list[list[str]] = [[]]
    groups += [p for p in _command_paths() if p and isinstance(_at(root, p), TyperGroup)]
    runner = CliRunner(env={"COLUMNS": "400", "NO_COLOR": "1"})
    for path in groups:
        out = runner.invoke(app, [*path, "--help"]).output
        for name, sub in _at(root, path).commands.items():
            if sub.hidden or not sub.help:
                continue
            first = " ".join(sub.help.split("\n\n")[0].split()).replace("``", "`")
            assert first[:120] in out, (path, name, first, out)


def _at(root: Any, path: list[str]) -> Any:
    for name in path:
        root = root.commands[name]
    return root


def test_choices_are_listed_without_brackets_of_a_type() -> None:
    result = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"}).invoke(
        app, ["proxy-status", "--help"]
    )
    assert "table|json|yaml" in result.output


def test_every_structured_command_takes_the_same_output_option() -> None:
    """-o table|json|yaml on each command whose output is structured (text: the old name)."""
    commands = [
        ["get"],
        ["proxy-status"],
        ["top"],
        ["traces"],
        ["trace"],
        ["token", "create"],
        ["token", "list"],
        ["agents", "list"],
        ["ca", "status"],
        ["describe", "service"],
        ["describe", "route"],
        ["describe", "mesh"],
        ["authz", "check"],
        ["authz", "explain"],
        ["authz", "access"],
        ["agent", "status"],
    ]
    root = typer.main.get_command(app)
    for path in commands:
        cmd: Any = root
        for name in path:
            cmd = cmd.commands[name]
        (option,) = [p for p in cmd.params if "-o" in p.opts]
        assert option.metavar == "table|json|yaml", path
        assert {c.value for c in option.shell_complete(None, "")} == {"table", "json", "yaml"}


def test_proxy_status_as_yaml(runner: CliRunner, server: ApiServer) -> None:
    server.fake.add_proxy(status("web-1"))
    result = runner.invoke(app, ["proxy-status", "-o", "yaml"])
    assert result.exit_code == 0, result.output
    (proxy,) = yaml.safe_load(result.stdout)
    assert proxy["name"] == "web-1"


def test_a_wrong_output_names_the_choices(runner: CliRunner) -> None:
    result = runner.invoke(app, ["proxy-status", "-o", "xml"])
    assert result.exit_code == 2
    assert "'xml' is not one of table, json, yaml" in result.output


def test_agent_status_json_is_a_hidden_alias(tmp_path: Path) -> None:
    StateDir(tmp_path).save_status({"agent_id": "a-1", "host": "h", "state": "running"})
    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
    old = runner.invoke(app, ["agent", "status", "--state-dir", str(tmp_path), "--json"])
    new = runner.invoke(app, ["agent", "status", "--state-dir", str(tmp_path), "-o", "json"])
    assert old.exit_code == new.exit_code == 0, old.output + new.output
    assert json.loads(old.stdout)["agent_id"] == json.loads(new.stdout)["agent_id"] == "a-1"
    as_yaml = runner.invoke(app, ["agent", "status", "--state-dir", str(tmp_path), "-o", "yaml"])
    assert yaml.safe_load(as_yaml.stdout)["host"] == "h"
    assert "--json" not in runner.invoke(app, ["agent", "status", "--help"]).output
