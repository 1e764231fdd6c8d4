"""What every command shares: exit codes, the --server and --token options, error
reporting (files are read in ``gossamer.cli.yaml_files``)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from gossamer.cli.client import DEFAULT_SERVER
from gossamer.errors import ApiError, GossamerError, UnreachableError, ValidationError

EXIT_OK = 0
#: invalid input, a refused change, a missing resource, any error the server reported
EXIT_ERROR = 1
#: wrong command-line usage (Click's own code)
EXIT_USAGE = 2
#: nothing answers at the control plane's address
EXIT_UNREACHABLE = 3


def check_server(url: str) -> str:
    """A ``--server`` URL without its trailing slash; ``BadParameter`` if not http(s)."""
    if not url.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{url!r} is not an http(s) URL: write e.g. {DEFAULT_SERVER}")
    return url.rstrip("/")


Server = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="GOSSAMER_SERVER",
        callback=check_server,
        help="the control plane's API",
        show_default=True,
    ),
]


Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="GOSSAMER_TOKEN",
        help="an operator token (default: GOSSAMER_TOKEN, else ~/.config/gossamer/token; the "
        "control plane writes its first one to <data-dir>/admin.token)",
        show_default=False,
    ),
]


MaxYamlNodes = Annotated[
    int,
    typer.Option(
        "--max-yaml-nodes",
        envvar="GOSSAMER_MAX_YAML_NODES",
        min=1,
        help="refuse YAML that composes to more nodes (an alias counts as every node it "
        "repeats, so an alias bomb fails fast)",
    ),
]


#: width for tables when stdout is a pipe or file: as wide as their content (no truncation)
PIPE_WIDTH = 1000


def stdout() -> Console:
    """Standard output; piped output is never cut to 80 columns (COLUMNS still wins)."""
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console.width = PIPE_WIDTH
    return console


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _print_problems(lines: Sequence[str], summary: str | None = None) -> None:
    err = stderr()
    for line in lines:
        err.print(Text(line, style="red"))
    if summary:
        err.print(Text(summary))


@contextmanager
def reporting_errors(*, changes: bool = True) -> Iterator[None]:
    """Turn Gossamer errors into a message on stderr and an exit code, never a traceback.
    ``changes``: the command could have changed something (then problems end with
    "nothing was changed"; ``validate`` never changes anything, so it does not say so)."""
    unchanged = "; nothing was changed" if changes else ""
    try:
        yield
    except UnreachableError as e:
        stderr().print(Text(f"error: {e}", style="red"))
        raise typer.Exit(EXIT_UNREACHABLE) from None
    except ApiError as e:
        if e.code == "validation":
            _print_problems(e.errors, f"{_count(e.errors)}{unchanged}")
        else:
            _print_problems([f"error: {line}" for line in e.errors])
        raise typer.Exit(EXIT_ERROR) from None
    except ValidationError as e:
        lines = [str(x) for x in e.errors] or [str(e)]
        _print_problems(lines, f"{_count(lines)}{unchanged}")
        raise typer.Exit(EXIT_ERROR) from None
    except GossamerError as e:
        stderr().print(Text(f"error: {e}", style="red"))
        raise typer.Exit(EXIT_ERROR) from None


def _count(lines: Sequence[str]) -> str:
    return f"{len(lines)} problem" + ("" if len(lines) == 1 else "s")
