"""Help text without Python type tags.

Typer shows each parameter's Python type in ``--help`` (``<bool>``, ``<list[Path]>``,
``<str>``): noise to a user. ``PlainGroup`` is the root command's class; when Typer builds
the command tree it walks every command (sub-groups are built first) and gives each
parameter Click's own way of naming a value: nothing for a flag, ``TEXT``/``INTEGER``/
``PATH``, the choices ``table|json|yaml``. Help reads as prose: Markdown's backticks for
reStructuredText's, and a command's line in its group's list is one line, not its
docstring's first lines.
"""

from __future__ import annotations

import inspect
from typing import Any

from typer import _click
from typer.core import TyperArgument, TyperGroup, TyperOption

#: Click's names for the value types Typer reads
_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN", "Path": "PATH"}


def _metavar(param: TyperArgument | TyperOption) -> str | None:
    if isinstance(param, TyperOption) and (param.is_flag or param.count):
        return None
    desc = param.type_descriptor
    if desc.is_choice and desc.choices:
        label = "|".join(str(getattr(c, "value", c)) for c in desc.choices)
    elif desc.is_path:
        label = "PATH"
    else:
        bare = param.bare_type()
        if bare.startswith("list[") and bare.endswith("]"):
            bare = bare[5:-1]
        label = _NAMES.get(bare, "VALUE")
    return f"{label}..." if param.nargs != 1 or desc.is_list else label


def plain_metavar(param: Any) -> str | None:
    """The value name ``--help`` shows for ``param`` (None for a flag)."""
    if isinstance(param, TyperOption) and param.metavar is not None:
        return param.metavar
    if isinstance(param, TyperArgument | TyperOption):
        return _metavar(param)
    return None


class PlainArgument(TyperArgument):
    def display_type(self, ctx: _click.Context) -> str:
        return _metavar(self) or ""

    def _usage_display_name(self) -> str:
        """``NAME`` when required, ``[NAME]`` when not (Typer writes ``{name}``)."""
        name = self.display_name_raw.upper()
        name = name if self.required else f"[{name}]"
        return f"{name}..." if self.nargs != 1 else name


class PlainOption(TyperOption):
    def display_type(self, ctx: _click.Context) -> str:
        return _metavar(self) or ""

    def display_type_rich(self, ctx: _click.Context) -> str | None:
        if self.metavar is not None:
            return self.metavar
        return _metavar(self)


def _plain(params: list[Any]) -> None:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = PlainOption
        elif type(param) is TyperArgument:
            param.__class__ = PlainArgument


def _prose(text: str) -> str:
    """Help text as a user reads it: reStructuredText's ````literal```` marks (the
    docstrings Typer takes help from are written for Sphinx too) as Markdown's single
    backticks, as other CLIs write them (and docs/cli.md shows them as code)."""
    return text.replace("``", "`")


def _plain_prose(command: Any, params: list[Any]) -> None:
    """``command``'s help and its parameters' without literal marks, and its line in its
    group's list of commands one line of prose: Typer keeps a docstring's line breaks
    there (rich markup mode), which cut its sentence wherever the source wrapped."""
    if command.help:
        command.help = _prose(command.help)
        if command.short_help is None:
            command.short_help = " ".join(inspect.cleandoc(command.help).split("\n\n")[0].split())
    for param in params:
        if getattr(param, "help", None):
            param.help = _prose(param.help)


def plain_help(command: Any) -> None:
    """Give every parameter of ``command`` and its sub-commands a plain metavar, and their
    help plain prose."""
    params = list(getattr(command, "params", []))
    if hasattr(command, "get_help_option"):  # made on first use, cached: make it now
        params.append(command.get_help_option(_click.Context(command)))
    _plain(params)
    _plain_prose(command, params)
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)


class PlainGroup(TyperGroup):
    """The root group: its whole tree shows plain metavars in ``--help``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_help(self)

    def get_params(self, ctx: _click.Context) -> list[_click.Parameter]:
        """Typer adds --install-completion and --show-completion after building the group."""
        params = super().get_params(ctx)
        _plain(params)
        return params
