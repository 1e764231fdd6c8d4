"""Isolation every test gets: a command run in-process (Typer's ``CliRunner``) that sets up
logging (``gossamer.cli.logs.setup_logging``) points the root logger at the runner's
stderr, which is closed when the command returns; without this, every later test of the
worker that logs prints ``--- Logging error ---``."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)
