"""docs/gossamer-agent.service's commands parse, and they talk to the control plane as it
serves by default (issue 13): ``--server`` has the scheme ``--api-tls``'s default gives
(HTTPS now), and no plaintext ``--xds`` points at an xDS port that is mTLS-only by default."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import typer

from gossamer.cli.main import app

UNIT = Path(__file__).resolve().parents[3] / "docs" / "gossamer-agent.service"
ROOT = typer.main.get_command(app)


def unit_commands() -> list[list[str]]:
    """Each ``gossamer ...`` command of the unit (its comments' steps and ExecStart), with
    continuation lines joined."""
    text = UNIT.read_text(encoding="utf-8")
    lines = [re.sub(r"^#\s?", "", line) for line in text.splitlines()]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    commands = []
    for line in joined.splitlines():
        match = re.search(r"(?:^|ExecStart=|\s)(\S*gossamer (?:agent|token) [a-z].*)$", line)
        if match:
            words = shlex.split(match[1].split(" #")[0])
            commands.append(words[1:])
    return commands


def resolve(words: list[str]) -> tuple[Any, Any, list[str], list[str]]:
    """The command ``gossamer WORDS`` names, its parent context, its path and the rest of
    the words (Typer carries its own Click, so groups are told by their subcommands)."""
    command: Any = ROOT
    parent = None
    path = ["gossamer"]
    while hasattr(command, "commands"):
        name, words = words[0], words[1:]
        ctx = command.context_class(command, info_name=path[-1], parent=parent)
        found = command.get_command(ctx, name)
        assert found is not None, f"no command {name!r} under {' '.join(path)}"
        command, parent = found, ctx
        path.append(name)
    return command, parent, path, words


def parse(words: list[str]) -> None:
    """``gossamer WORDS`` parsed as the CLI would (options and required ones checked; the
    command is not run)."""
    command, parent, path, rest = resolve(words)
    command.make_context(" ".join(path), rest, parent=parent)


def option_default(words: list[str], flag: str) -> object:
    command, _, _, _ = resolve(words)
    [param] = [p for p in command.params if flag in getattr(p, "opts", [])]
    return param.default


def test_the_units_commands_parse() -> None:
    commands = unit_commands()
    assert [c[:2] for c in commands] == [["agent", "join"], ["agent", "run"]], commands
    for words in commands:
        parse(words)


def test_server_scheme_and_xds_match_the_control_planes_defaults() -> None:
    [join] = [c for c in unit_commands() if c[:2] == ["agent", "join"]]
    server = join[join.index("--server") + 1]
    api_tls = option_default(["control-plane"], "--api-tls")
    assert server.startswith("https://" if api_tls == "on" else "http://"), (server, api_tls)
    if option_default(["control-plane"], "--xds-tls") == "required":
        assert "--xds" not in join, "a plaintext --xds would dial an mTLS-only xDS port"
