"""One logging setup for every long-running command (control plane, agent, gateway, demo).

Records go to stderr, one line each: ``time LEVEL logger: message`` or, with ``json=True``,
one JSON object per line (for a log shipper). Libraries that log every request at INFO
(httpx, httpcore) or chatter about their internals are held at WARNING, so the operator's
INFO lines are Gossamer's own: streams opening and closing, NACKs, agents, restarts.
Called by the command, never at import: tests and library users keep their own setup.
"""

from __future__ import annotations

import json as jsonlib
import logging
import sys
from typing import TextIO

from gossamer.errors import ConfigError

#: libraries whose INFO lines are noise for an operator (e.g. httpx logs every request)
NOISY = ("httpx", "httpcore", "hpack", "uvicorn.access", "asyncio", "grpc")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return jsonlib.dumps(entry, ensure_ascii=False)


def setup_logging(
    level: int | str = logging.INFO, *, json: bool = False, stream: TextIO | None = None
) -> None:
    """Send log records of ``level`` and above to ``stream`` (stderr); replaces any handler
    the root logger had, so calling it twice does not print lines twice."""
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ConfigError(
            f"log level {level!r} is not one of debug, info, warning, error, critical"
        )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in NOISY:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
