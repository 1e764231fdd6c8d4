"""docs/cli.md, generated from the command tree itself (``scripts/cli-reference`` writes
it; a test checks it is current): every command, its arguments and options, with the same
value names ``--help`` shows."""

from __future__ import annotations

from typing import Any

import typer
from typer import _click
from typer.core import TyperGroup

from gossamer.cli.help import plain_metavar

HEADER = """\
# Command-line reference

Generated from the `gossamer` command tree by `scripts/cli-reference`; do not edit by hand
(a test fails when it is out of date). Every command also answers `--help`.

Common to every command that prints structured data: `-o table|json|yaml` (`table` for
people; `json` and `yaml` for programs, never wrapped or coloured). Shell completion:
`gossamer --install-completion` (bash, zsh, fish), or `gossamer --show-completion bash` to
see the script. `gossamer version` names the CLI's, its Envoy's and the control plane's
versions and warns about any proxy whose Envoy is not the release the control plane expects.
"""


def _default(param: Any) -> str:
    if param.hidden or param.required or getattr(param, "is_flag", False):
        return ""
    default = param.default
    if default is None or default == () or default == []:
        return ""
    value = getattr(default, "value", default)
    return f"`{value}`"


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|").replace("<", "&lt;")


def _command(path: list[str], cmd: Any, out: list[str]) -> None:
    ctx = _click.Context(cmd, info_name=" ".join(path))
    params = [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]
    args = [p for p in params if p.param_type_name == "argument"]
    usage = " ".join([*path, "[OPTIONS]", *(p.name.upper() for p in args)])
    out += [f"## `{' '.join(path)}`", "", f"`{usage}`", ""]
    if cmd.help:
        out += [cmd.help.strip(), ""]
    if not params:
        return
    out += ["| option | value | default | what |", "| --- | --- | --- | --- |"]
    for p in params:
        names = p.name.upper() if p.param_type_name == "argument" else ", ".join(p.opts)
        metavar = plain_metavar(p) or ""
        what = _cell(getattr(p, "help", None))
        if getattr(p, "envvar", None):
            what += f" (env {p.envvar})"
        out.append(f"| `{names}` | {_cell(metavar)} | {_default(p)} | {what} |")
    out.append("")


def _walk(path: list[str], cmd: Any, out: list[str]) -> None:
    if isinstance(cmd, TyperGroup):
        if len(path) > 1:
            out += [f"## `{' '.join(path)}` …", "", (cmd.help or "").strip(), ""]
        for name, sub in cmd.commands.items():
            if not sub.hidden:
                _walk([*path, name], sub, out)
    else:
        _command(path, cmd, out)


def cli_reference(app: typer.Typer) -> str:
    """docs/cli.md for ``app``."""
    root = typer.main.get_command(app)
    out = [HEADER, "## `gossamer`", "", (root.help or "").strip(), ""]
    ctx = _click.Context(root, info_name="gossamer")
    out += ["| option | what |", "| --- | --- |"]
    for p in root.get_params(ctx):
        out.append(f"| `{', '.join(p.opts)}` | {_cell(getattr(p, 'help', None))} |")
    out.append("")
    _walk(["gossamer"], root, out)
    return "\n".join(out).rstrip() + "\n"
