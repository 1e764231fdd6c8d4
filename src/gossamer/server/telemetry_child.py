"""The telemetry service (``gossamer telemetry serve``) as the control plane's supervised
child, and the query API forwarded to it (docs/telemetry.md, "Run by the control plane").

``--telemetry auto`` (the default): the control plane reserves the service's gRPC address
at start (``--telemetry-listen``, default a free loopback port) and its query API's
(``--telemetry-http``, likewise), tells the translator so every sidecar and gateway logs
to it from its first configuration (``translate.telemetry``), and always runs ``gossamer
telemetry serve`` as a child: restarted with back-off when it exits, stopped at shutdown
(``server.children``). Its data is ``<data-dir>/telemetry.sqlite``, its output
``<data-dir>/telemetry.log``, and its bearer token ``<data-dir>/telemetry.token`` (0600,
made at the first start and kept). ``--telemetry HOST:PORT``: a service running elsewhere
(``--telemetry-http`` its query API, its token in ``<data-dir>/telemetry.token``);
``off``: no access logs at all.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

from gossamer.api.auth import Authenticator
from gossamer.api.telemetry import TelemetryUpstream, install_telemetry
from gossamer.errors import ConfigError
from gossamer.polling import Backoff
from gossamer.server.children import (
    ChildService,
    child_address,
    gossamer_program,
    host_port,
    kept_token,
)
from gossamer.translate.telemetry import TelemetryService

TOKEN_FILE = "telemetry.token"
LOG_FILE = "telemetry.log"
DATA_FILE = "telemetry.sqlite"
#: the shortest token the service takes (``telemetry.serve.ServeSettings.token``)
MIN_TOKEN = 16

_RISK = "the telemetry service speaks plaintext ({what}: the mesh's traffic, who calls whom)"


@dataclass(frozen=True)
class TelemetrySettings:
    #: ``auto``, ``off`` or the HOST:PORT (gRPC) of a service running elsewhere
    mode: str = "auto"
    #: ``auto``: where the child takes access logs (default: 127.0.0.1 on a free port)
    listen: tuple[str, int] | None = None
    #: the query API: ``auto``, where the child serves it (default: 127.0.0.1 on a free
    #: port); HOST:PORT mode, where the one elsewhere serves it
    http: tuple[str, int] | None = None
    #: allow ``auto`` to listen on non-loopback addresses (plaintext gRPC and HTTP)
    insecure_listen: bool = False
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.5, maximum=30.0))
    #: ``auto``: the child's ``--trace-decision-wait`` (seconds; None: its default, 10)
    trace_decision_wait_s: float | None = None
    #: ``auto``: the child's ``--otlp-endpoint`` (HOST:PORT of an OTLP/gRPC collector)
    otlp_endpoint: str | None = None
    #: ``auto``: ``--otlp-insecure`` (plaintext to the collector)
    otlp_insecure: bool = False


class _Always:
    """The child runs as long as the control plane does."""

    def needed(self) -> bool:
        return True

    async def changed(self) -> None:
        await asyncio.Event().wait()


class TelemetryChild(ChildService):
    """``gossamer telemetry serve``, always; restarted with back-off."""

    def __init__(
        self,
        address: TelemetryService,
        http: tuple[str, int],
        data_dir: Path,
        token: str,
        settings: TelemetrySettings,
    ) -> None:
        async def kept() -> str:
            return token

        super().__init__(
            "telemetry serve", self._argv, _Always(), kept, data_dir / LOG_FILE, settings.backoff
        )
        self.address = address
        self.http = http
        self.data_dir = data_dir
        self.settings = settings

    def _argv(self) -> list[str]:
        argv = [
            *gossamer_program(), "telemetry", "serve",
            "--listen", host_port((self.address.host, self.address.port)),
            "--http", host_port(self.http),
            "--data", str(self.data_dir / DATA_FILE),
            "--token-file", str(self.data_dir / TOKEN_FILE),
        ]  # fmt: skip
        s = self.settings
        if s.trace_decision_wait_s is not None:
            argv += ["--trace-decision-wait", f"{s.trace_decision_wait_s:g}"]
        if s.otlp_endpoint is not None:
            argv += ["--otlp-endpoint", s.otlp_endpoint]
        if s.otlp_insecure:
            argv.append("--otlp-insecure")
        return argv


@dataclass(frozen=True)
class Telemetry:
    """Where proxies send access logs (None: ``off``), the child (``auto``) and the API."""

    address: TelemetryService | None
    upstream: TelemetryUpstream
    child: TelemetryChild | None = None


async def service_token(data_dir: Path) -> str:
    """The child's bearer token: the one kept in ``telemetry.token``, else a new one."""

    async def create() -> str:
        return secrets.token_hex(32)

    return await kept_token(data_dir / TOKEN_FILE, lambda t: len(t) >= MIN_TOKEN, create)


def addresses(
    settings: TelemetrySettings, *, reserve: bool = True, data_dir: Path | None = None
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """The gRPC address proxies log to (None: ``off``) and the query API's (``auto``: the
    child's; else ``--telemetry-http`` or None); a bad value is a ``ConfigError`` naming
    the flag. ``reserve``: free ports are reserved for port 0 (else left 0: only checked)."""
    _check_child_options(settings)
    address = child_address(
        settings.mode,
        settings.listen,
        insecure_listen=settings.insecure_listen,
        option="--telemetry",
        listen_option="--telemetry-listen",
        plaintext_risk=_RISK.format(what="gRPC access logs"),
        reserve=reserve,
        kept=None if data_dir is None else data_dir / "telemetry.address",
    )
    if address is None or settings.mode != "auto":
        return address, settings.http
    http = child_address(
        "auto",
        settings.http,
        insecure_listen=settings.insecure_listen,
        option="--telemetry",
        listen_option="--telemetry-http",
        plaintext_risk=_RISK.format(what="HTTP with a bearer token"),
        reserve=reserve,
        kept=None if data_dir is None else data_dir / "telemetry-http.address",
    )
    return address, http


def _check_child_options(settings: TelemetrySettings) -> None:
    wait = settings.trace_decision_wait_s
    if wait is not None and not 0.0 <= wait <= 300.0:
        raise ConfigError(f"--telemetry-trace-decision-wait: {wait:g}; give 0..300 seconds")
    if settings.otlp_endpoint is not None:
        host, sep, port = settings.otlp_endpoint.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"--telemetry-otlp: {settings.otlp_endpoint!r} is not HOST:PORT (the "
                "collector's OTLP/gRPC port, e.g. otel-collector:4317)"
            )


async def open_telemetry(
    settings: TelemetrySettings, data_dir: Path, api: FastAPI, auth: Authenticator | None
) -> Telemetry:
    """Reserve the addresses, make the token and the child (``auto``), and forward the
    query API on ``api``."""
    token_file = data_dir / TOKEN_FILE
    address, http = addresses(settings, data_dir=data_dir)
    out: Telemetry
    if address is None:
        off = TelemetryUpstream(None, token_file, "the control plane runs with --telemetry off")
        out = Telemetry(None, off)
    elif settings.mode != "auto":
        url = f"http://{host_port(settings.http)}" if settings.http else None
        hint = f"a service elsewhere (--telemetry {settings.mode}"
        hint += (
            f", --telemetry-http {host_port(settings.http)})"
            if settings.http
            else ("): give --telemetry-http HOST:PORT of its query API")
        )
        out = Telemetry(TelemetryService(*address), TelemetryUpstream(url, token_file, hint))
    else:
        assert http is not None
        token = await service_token(data_dir)
        service = TelemetryService(*address)
        child = TelemetryChild(service, http, data_dir, token, settings)
        hint = f"the control plane's child; see {data_dir / LOG_FILE}"
        upstream = TelemetryUpstream(f"http://{host_port(http)}", token_file, hint)
        out = Telemetry(service, upstream, child)
    install_telemetry(api, out.upstream, auth)
    return out
