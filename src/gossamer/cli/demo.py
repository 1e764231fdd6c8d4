"""``gossamer demo``."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from gossamer.cli.logs import setup_logging


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        duration: Annotated[
            float | None,
            typer.Option(
                "--duration",
                min=1,
                help="run this many seconds, then exit "
                "(0 only if traffic succeeded); default: until Ctrl-C",
            ),
        ] = None,
    ) -> None:
        """Run a small shop of services in a mesh on this machine: control plane, sidecars on
        their own loopback hosts, an ingress gateway and live traffic."""
        from gossamer.demo.run import main

        setup_logging(logging.WARNING)  # the demo's console shows what happens
        raise typer.Exit(main(duration))
