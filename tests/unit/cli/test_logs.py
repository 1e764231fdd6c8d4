"""The one logging setup: format, JSON, noisy libraries held at WARNING, idempotent."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gossamer.cli.logs import setup_logging
from gossamer.errors import ConfigError


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


def test_lines_name_level_and_logger_and_httpx_info_is_quiet() -> None:
    out = io.StringIO()
    setup_logging("info", stream=out)
    setup_logging("info", stream=out)  # a second call replaces, not doubles, the handler
    logging.getLogger("gossamer.xds.monitor").info("xDS stream opened: %s (%s)", "n", "sotw")
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1/ready")
    logging.getLogger("httpx").warning("something worth seeing")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("INFO gossamer.xds.monitor: xDS stream opened: n (sotw)")
    assert lines[1].endswith("WARNING httpx: something worth seeing")


def test_json_lines() -> None:
    out = io.StringIO()
    setup_logging(logging.WARNING, json=True, stream=out)
    logging.getLogger("gossamer.x").info("hidden")
    logging.getLogger("gossamer.x").warning("gateway~edge~public rejected clusters: bad")
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "gossamer.x"
    assert entry["message"] == "gateway~edge~public rejected clusters: bad"


def test_an_unknown_level_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="log level 'loud'"):
        setup_logging("loud")
