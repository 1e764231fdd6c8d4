"""``create_app(settings)``: the one place the control plane's parts are wired together.

The composition root: store, reconciler (``controlplane``), xDS server, agent registry,
NGAC engine and the REST API are built and connected here and nowhere else, so each of
those packages knows only the ones below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from gossamer.api.app import create_api
from gossamer.api.limits import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_RESOURCE_BYTES
from gossamer.authz.audit import AuditLog
from gossamer.authz.service import AuthzService
from gossamer.ca.authority import CertificateAuthority
from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import ConfigError
from gossamer.files import private_dir
from gossamer.registry import Registry
from gossamer.registry.liveness import LivenessSettings
from gossamer.registry.operators import ADMIN_TOKEN_FILE, OperatorTokens
from gossamer.server.authz import open_authz
from gossamer.server.ca import open_ca
from gossamer.server.http_server import ApiServer, ApiServerLimits, fd_limit
from gossamer.server.listen import check_listen_addresses
from gossamer.server.xds_identity import XdsCertificate, xds_authorizer
from gossamer.store.base import Store
from gossamer.store.factory import open_store
from gossamer.xds.auth import XdsTlsMode
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import FORGET_AFTER, XdsMonitor
from gossamer.xds.server import Keepalive, XdsServer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    api_addr: tuple[str, int] = ("127.0.0.1", 7070)
    xds_addr: tuple[str, int] = ("127.0.0.1", 18000)
    #: a store location for ``open_store``; default: SQLite in data_dir
    store: str | None = None
    #: when a host is dead (docs/agent-protocol.md, "The liveness rule")
    liveness: LivenessSettings = field(default_factory=LivenessSettings)
    #: ``off``: plaintext xDS on xds_addr; ``optional``: that and mTLS on xds_tls_addr;
    #: ``required``: mTLS only (docs/security.md, "xDS")
    xds_tls: XdsTlsMode = "optional"
    #: where xDS is served over mTLS; default: xds_addr's host and port + 1 (0 stays 0)
    xds_tls_addr: tuple[str, int] | None = None
    #: pings from the xDS server, so a dead or frozen proxy's stream ends
    xds_keepalive: Keepalive = field(default_factory=Keepalive)
    #: seconds a disconnected proxy with no Workload/Gateway stays in proxy-status
    forget_proxies_after: float = FORGET_AFTER
    #: the REST API's deadlines and connection cap (--api-header-timeout ...)
    api_limits: ApiServerLimits = field(default_factory=ApiServerLimits)
    #: allow non-loopback --api-addr/--xds-addr while both are unauthenticated plaintext
    insecure_listen: bool = False
    #: a request body larger than this is refused before it is parsed (--max-request-bytes)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    #: a resource larger than this as JSON is refused (--max-resource-bytes)
    max_resource_bytes: int = DEFAULT_MAX_RESOURCE_BYTES
    #: host names the REST API answers to besides IP addresses, localhost and the
    #: --api-addr host (--api-host; any other Host is refused: DNS rebinding)
    api_hosts: tuple[str, ...] = ()


def parse_addr(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{option}: {text!r} is not HOST:PORT (e.g. 127.0.0.1:7070)")
    return host.strip("[]") or "127.0.0.1", int(port)


def tls_address(settings: Settings) -> tuple[str, int]:
    """``--xds-tls-addr``, or by default ``--xds-addr``'s host and the port after its own."""
    if settings.xds_tls_addr is not None:
        return settings.xds_tls_addr
    host, port = settings.xds_addr
    return host, port + 1 if port else 0


def _listen(addr: tuple[str, int], option: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise ConfigError(
            f"{option}: cannot listen on {addr[0]}:{addr[1]}: {e.strerror}; pick another address"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


@dataclass
class ControlPlaneApp:
    """A running control plane: its parts and the addresses it actually bound."""

    settings: Settings
    store: Store
    plane: ControlPlane
    xds: XdsServer
    #: the Prometheus metrics served at /metrics
    metrics: CollectorRegistry
    #: join tokens and agents (the agent protocol's side in the control plane)
    agents: Registry
    api_addr: tuple[str, int] = ("", 0)
    xds_addr: tuple[str, int] = ("", 0)
    #: where xDS is served over mTLS (``("", 0)``: not, ``--xds-tls off``)
    xds_tls_addr: tuple[str, int] = ("", 0)
    #: NGAC decisions, administration and the audit trail (set once the engine is open)
    authz: AuthzService | None = None
    #: the mesh CA (``<data-dir>/ca``; set once the plane has loaded the Mesh)
    ca: CertificateAuthority | None = None
    #: operator tokens, as NGAC users (set once the engine is open)
    operators: OperatorTokens | None = None
    #: ``<data-dir>/admin.token`` if this start wrote the first operator token there
    admin_token_written: Path | None = None
    _api: ApiServer | None = field(default=None, repr=False)

    @property
    def api_url(self) -> str:
        return f"http://{self.api_addr[0]}:{self.api_addr[1]}"


#: the GIL switch interval (s) while a control plane serves (CPython's default: 5 ms)
SWITCH_INTERVAL = 0.001


@contextlib.contextmanager
def serving_interpreter() -> Iterator[None]:
    """The process-wide interpreter settings a serving control plane needs, undone after.

    Publishing translates in a worker thread (``controlplane.publisher``); the event loop
    serving every ADS stream, API call and watch waits for the GIL each time it wakes, up
    to the switch interval: 1 ms instead of 5 ms. And a collection of the oldest GC
    generation walks every tracked object while holding the GIL, in whichever thread: with
    a 1000-service model loaded that held the loop 60-130 ms. What is loaded at start
    lives as long as the plane, so after one full collection it is frozen out of later
    ones. docs/benchmarks.md (event-loop lag) has the figures. Entered once the plane has
    loaded, before anything is served (the collection costs ~0.1 s).
    """
    switch = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        sys.setswitchinterval(switch)


@contextlib.asynccontextmanager
async def create_app(settings: Settings) -> AsyncIterator[ControlPlaneApp]:
    """Start everything; on exit stop the API, the xDS server, the reconciler and the store."""
    plaintext = {"--api-addr": settings.api_addr}
    if settings.xds_tls != "required":
        plaintext["--xds-addr"] = settings.xds_addr
    check_listen_addresses(plaintext, insecure_listen=settings.insecure_listen)
    private_dir(settings.data_dir, "--data-dir")  # 0700: store, audit trail (issue 7, R6)
    store = await open_store(settings.store or settings.data_dir / "gossamer.db")
    metrics = CollectorRegistry()
    cache = SnapshotCache()
    monitor = XdsMonitor(metrics, forget_after=settings.forget_proxies_after)
    plane = ControlPlane(store, cache, monitor)
    xds = XdsServer(cache, monitor, settings.xds_keepalive)
    agents = Registry(plane, liveness=settings.liveness)
    app = ControlPlaneApp(settings, store, plane, xds, metrics, agents)
    interpreter = contextlib.ExitStack()
    try:
        await plane.load()
        authz = await open_authz(plane, AuditLog(settings.data_dir / "authz-audit.jsonl"))
        app.authz = authz
        app.ca = await open_ca(plane, settings.data_dir / "ca")
        app.operators = OperatorTokens(plane, authz.engine)
        app.admin_token_written = await app.operators.bootstrap(settings.data_dir)
        if app.admin_token_written is not None:
            log.info("wrote the first operator token to %s (0600)", app.admin_token_written)
        interpreter.enter_context(serving_interpreter())
        xds.authorize = xds_authorizer(plane, app.ca, settings.xds_tls)
        xds_certificate = None
        if settings.xds_tls != "off":
            tls_addr = tls_address(settings)
            xds_certificate = XdsCertificate(plane, app.ca, tls_addr[0])
            credentials = await xds_certificate.open()
            app.xds_tls_addr = (tls_addr[0], await xds.start_tls(*tls_addr, credentials))
        if settings.xds_tls != "required":
            port = await xds.start(*settings.xds_addr)
            app.xds_addr = (settings.xds_addr[0], port)
        sock = _listen(settings.api_addr, "--api-addr")
        app.api_addr = sock.getsockname()[:2]
        api = ApiServer(
            create_api(
                plane,
                metrics=metrics,
                agents=agents,
                authz=authz,
                ca=app.ca,
                operators=app.operators,
                admin_token_file=str(settings.data_dir / ADMIN_TOKEN_FILE),
                api_hosts=(settings.api_addr[0], *settings.api_hosts),
                max_request_bytes=settings.max_request_bytes,
                max_resource_bytes=settings.max_resource_bytes,
            ),
            sock,
            settings.api_limits,
            fd_limit=fd_limit(),
        )
        app._api = api
        async with asyncio.TaskGroup() as tg:
            runner = tg.create_task(plane.run())
            followers = [
                tg.create_task(authz.engine.run()),
                tg.create_task(authz.audit.run()),
                # loaded and serving xDS: the liveness clocks start now
                tg.create_task(agents.presence.run()),
            ]
            if xds_certificate is not None:
                followers.append(tg.create_task(xds_certificate.run()))
            serving = tg.create_task(api.serve())
            try:
                yield app
            finally:
                api.stop()
                await serving
                runner.cancel()
                for task in followers:
                    task.cancel()
    finally:
        interpreter.close()
        await xds.stop()
        monitor.close()
        await store.close()
