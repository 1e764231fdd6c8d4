"""The one ``-o/--output`` option every command with structured output takes.

``table`` is for people (tables, or lines where a table does not fit), ``json`` and
``yaml`` for programs: the same data as the API's, never wrapped or coloured. ``text``, the
old name some commands used for ``table``, is still accepted for one release.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

import typer

from gossamer.cli import render


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


#: names kept for one release: ``-o text`` was ``table`` on some commands
_OLD_NAMES = {"text": Output.table}


def parse_output(value: str) -> Output:
    if value in _OLD_NAMES:
        return _OLD_NAMES[value]
    try:
        return Output(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not one of table, json, yaml") from None


OutputOption = Annotated[
    Output,
    typer.Option(
        "-o",
        "--output",
        parser=parse_output,
        metavar="table|json|yaml",
        autocompletion=lambda: [o.value for o in Output],
        help="table for people; json or yaml for programs",
    ),
]


def emit(output: Output, data: object, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON or YAML, or call ``human`` to show it to a person."""
    if output is Output.json:
        typer.echo(render.to_json(data))
    elif output is Output.yaml:
        typer.echo(render.to_yaml(data), nl=False)
    else:
        human()
