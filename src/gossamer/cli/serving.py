"""What the request-path services' commands share (``gossamer authz serve``, ``gossamer
ratelimit serve``): the options naming the control plane they follow, and running a
service until SIGINT or SIGTERM with one line saying where it listens.

Both read what they decide with through the API (``--server``, with an operator token from
``--token`` or ``GOSSAMER_TOKEN``, verified with ``--ca-file`` or the CA fingerprint in
the token) or from a file; the control plane starts its own children this way
(``server.children``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Protocol, TypeVar

import typer

from gossamer.agent.trust import CA_FILE_ENV
from gossamer.cli.client import operator_token
from gossamer.cli.common import reporting_errors
from gossamer.cli.logs import setup_logging

Listen = Annotated[
    str, typer.Option("--listen", help="where Envoys reach it (HOST:PORT; 0: a free port)")
]
Server = Annotated[
    str | None,
    typer.Option("--server", envvar="GOSSAMER_SERVER", help="the control plane's API"),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="GOSSAMER_TOKEN", help="a (read-only) operator token for --server"
    ),
]
CaFile = Annotated[
    Path | None,
    typer.Option("--ca-file", envvar=CA_FILE_ENV, help="verify --server against these roots"),
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v")]


@dataclass(frozen=True)
class ApiSource:
    """The control plane a service follows (all None: it reads a file instead)."""

    server: str | None
    token: str | None
    ca_file: Path | None

    @classmethod
    def of(cls, server: str | None, token: str | None, ca_file: Path | None) -> ApiSource:
        """``--server`` without a trailing slash; the token from ``--token``, else the
        environment or the token file (only with ``--server``)."""
        if not server:
            return cls(None, None, ca_file)
        return cls(server.rstrip("/"), operator_token(token), ca_file)


class Checked(Protocol):
    def check(self) -> None: ...


S = TypeVar("S", bound=Checked)
#: ``serve(settings, stop, on_listening)`` of a service package
Serve = Callable[[S, asyncio.Event, Callable[[str, int], None]], Awaitable[object]]


async def _until_signalled(
    serve: Serve[S], settings: S, announce: Callable[[str, int], str]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def listening(host: str, port: int) -> None:
        print(announce(host, port), flush=True)

    await serve(settings, stop, listening)


def run_service(
    settings: Callable[[], S],
    serve: Serve[S],
    announce: Callable[[str, int], str],
    *,
    verbose: bool,
) -> None:
    """Build the settings (bad options are reported as errors naming them), check them, and
    serve until SIGINT or SIGTERM, printing ``announce(host, port)`` once listening."""
    setup_logging(logging.DEBUG if verbose else logging.INFO)
    with reporting_errors():
        built = settings()
        built.check()
        asyncio.run(_until_signalled(serve, built, announce))
