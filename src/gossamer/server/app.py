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

from gossamer.api.agents import Discovery
from gossamer.api.app import create_api
from gossamer.api.auth import Authenticator
from gossamer.api.authz_graph import GraphBoard, install_authz_graph
from gossamer.api.backup import install_backup
from gossamer.api.decision_reports import DecisionEvents, install_decision_reports
from gossamer.api.decisions import install_decisions
from gossamer.api.describe import mesh_router
from gossamer.api.rate_limit_rules import RuleBoard, install_rate_limit_rules
from gossamer.api.traces import install_traces
from gossamer.api.ui import install_ui
from gossamer.authz.audit import AuditLog
from gossamer.authz.decisions import DecisionTrail
from gossamer.authz.service import AuthzService
from gossamer.ca.authority import ROTATION_WITH_REPLICAS, CertificateAuthority
from gossamer.controlplane.address_seed import ensure_address_seed
from gossamer.controlplane.jwks_refresh import JwksRefresher
from gossamer.controlplane.leadership import Singletons
from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import ConfigError
from gossamer.files import private_dir
from gossamer.registry import Registry
from gossamer.registry.dumps import DumpBroker
from gossamer.registry.operators import ADMIN_TOKEN_FILE, OperatorTokens
from gossamer.server.authz import open_authz
from gossamer.server.authz_child import AuthzChild
from gossamer.server.authz_child import service_address as authz_address
from gossamer.server.ca import RotationDriver, open_ca
from gossamer.server.http_server import ApiServer, fd_limit
from gossamer.server.listen import check_listen_addresses
from gossamer.server.rate_limit import (
    RateLimitChild,
    child_token,
    service_address,
)
from gossamer.server.replicas import replica_of
from gossamer.server.server_certificate import (
    ServerCertificateKeeper,
    api_ssl_context,
)
from gossamer.server.settings import Settings, certificate_hosts, check_api_tls, tls_address
from gossamer.server.settings_check import check_settings
from gossamer.server.telemetry_child import Telemetry, open_telemetry
from gossamer.server.telemetry_relay import MetricsRelay
from gossamer.server.xds_identity import xds_authorizer
from gossamer.store.base import Store
from gossamer.store.factory import open_store
from gossamer.translate.ext_authz import AuthzService as DecisionPointAddress
from gossamer.translate.global_rate_limit import RateLimitService
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.server import XdsServer
from gossamer.xds.tls import ServerCredentials

log = logging.getLogger(__name__)


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
    #: request decisions of the data plane: ``<data-dir>/decisions.jsonl`` (docs/ngac.md)
    decisions: DecisionTrail | None = None
    #: the mesh CA (``<data-dir>/ca``; set once the plane has loaded the Mesh)
    ca: CertificateAuthority | None = None
    #: operator tokens, as NGAC users (set once the engine is open)
    operators: OperatorTokens | None = None
    #: ``<data-dir>/admin.token`` if this start wrote the first operator token there
    admin_token_written: Path | None = None
    #: the REST API's server (set once it listens)
    api: ApiServer | None = field(default=None, repr=False)

    #: the control plane's certificate for the API and xDS (set once the CA is open)
    certificate: ServerCertificateKeeper | None = None
    #: where proxies reach the rate-limit service, and its child process (``auto``)
    rate_limit_address: RateLimitService | None = None
    rate_limit_child: RateLimitChild | None = None
    #: where sidecars reach the NGAC decision point, and its child process (``auto``)
    authz_address: DecisionPointAddress | None = None
    authz_child: AuthzChild | None = None
    #: where proxies send access logs, the child (``auto``), the forwarded query API
    telemetry: Telemetry | None = None
    #: the proxies' stat-sink exports, relayed from the xDS ports to the telemetry service
    telemetry_relay: MetricsRelay | None = None
    #: fetches the keys of jwks.uri issuers; its state in ``gossamer describe mesh``
    jwks: JwksRefresher | None = None

    @property
    def api_url(self) -> str:
        scheme = "https" if self.settings.api_tls else "http"
        return f"{scheme}://{self.api_addr[0]}:{self.api_addr[1]}"

    def trust_bundle_pem(self) -> bytes:
        """Every root the mesh trusts (what API clients verify the server against)."""
        assert self.ca is not None, "the CA is not open yet"
        return self.ca.trust_bundle_pem()

    def discovery(self) -> Discovery:
        """What a joining host learns besides its credential."""

        def addr(a: tuple[str, int]) -> str | None:
            host = f"[{a[0]}]" if ":" in a[0] else a[0]
            return f"{host}:{a[1]}" if a[1] else None

        return Discovery(self.trust_bundle_pem(), addr(self.xds_addr), addr(self.xds_tls_addr))


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
    if _Serving.planes == 0:
        _Serving.switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
    _Serving.planes += 1
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        _Serving.planes -= 1
        if _Serving.planes == 0:  # the last plane of this process: as it was before the first
            gc.unfreeze()
            sys.setswitchinterval(_Serving.switch)


class _Serving:
    """The control planes serving in this process (tests run several, and stop them in any
    order): the interpreter's settings are process-wide, so the first plane sets them and
    the last one puts back what was there before the first."""

    planes = 0
    switch = 0.0


def _local_url(app: ControlPlaneApp) -> str:
    """The API as a process on this host reaches it."""
    host = app.api_addr[0]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if app.settings.api_tls else 'http'}://{host}:{app.api_addr[1]}"


@contextlib.asynccontextmanager
async def create_app(settings: Settings) -> AsyncIterator[ControlPlaneApp]:
    """Start everything; on exit stop the API, the xDS server, the reconciler and the store."""
    check_settings(settings.rate_limit, settings.authz_service, settings.telemetry)  # first
    check_api_tls(settings)
    plaintext: dict[str, tuple[str, int]] = {}
    if settings.xds_tls != "required":
        plaintext["--xds-addr"] = settings.xds_addr
    check_listen_addresses(plaintext, insecure_listen=settings.insecure_listen)
    private_dir(settings.data_dir, "--data-dir")  # 0700: store, audit trail (issue 7, R6)
    store = await open_store(
        settings.store or settings.data_dir / "gossamer.db", data_dir=settings.data_dir
    )
    metrics = CollectorRegistry()
    cache = SnapshotCache()
    monitor = XdsMonitor(metrics, forget_after=settings.forget_proxies_after)
    plane = ControlPlane(store, cache, monitor)
    # (and after each publish round, what it built: see serving_interpreter and
    # controlplane.frozen_heap)
    plane.publisher.heap.enabled = True
    xds = XdsServer(cache, monitor, settings.xds_keepalive)
    relay = MetricsRelay(xds.check)  # the proxies' stat sink -> the telemetry service
    xds.services.append(relay.add_to)
    # on etcd: one replica of several (probe, shared liveness, leader; "Replicas")
    replica = replica_of(plane, xds, settings.store_loss_grace)
    agents = Registry(plane, liveness=settings.liveness, shared=replica.presence)
    app = ControlPlaneApp(settings, store, plane, xds, metrics, agents)
    app.telemetry_relay = relay
    interpreter = contextlib.ExitStack()
    try:
        await plane.load()
        await ensure_address_seed(plane)  # first: it tells a fresh store from an old one
        authz = await open_authz(plane, AuditLog(settings.data_dir / "authz-audit.jsonl"))
        app.authz = authz
        app.decisions = decisions = await DecisionTrail.open(settings.data_dir / "decisions.jsonl")
        app.ca = await open_ca(plane, settings.data_dir / "ca")
        if replica.presence is not None:
            app.ca.rotation_refused = ROTATION_WITH_REPLICAS
        rotation = RotationDriver(plane, agents, app.ca)  # (and caVersion in heartbeats)
        certificate = ServerCertificateKeeper(plane, app.ca, certificate_hosts(settings))
        app.certificate = certificate
        await certificate.open()
        app.operators = OperatorTokens(plane, authz.engine)
        app.operators.pin = agents.pin = lambda: certificate.pin
        app.admin_token_written = await app.operators.bootstrap(settings.data_dir)
        # a certificate from a new root (root rotation): admin.token names it at once
        operators = app.operators
        certificate.subscribe(lambda _: operators.repin_admin_token(settings.data_dir))
        if app.admin_token_written is not None:
            log.info("wrote the first operator token to %s (0600)", app.admin_token_written)
        rules_board = RuleBoard(plane)
        dumps = DumpBroker()  # the hosts' long-polls (api.host_requests)
        interpreter.enter_context(serving_interpreter())
        xds.authorize = xds_authorizer(plane, app.ca, settings.xds_tls)
        if settings.xds_tls != "off":
            tls_addr = tls_address(settings)
            credentials = ServerCredentials(certificate.current)
            certificate.subscribe(credentials.update)
            app.xds_tls_addr = (tls_addr[0], await xds.start_tls(*tls_addr, credentials))
            log.info("xDS over mTLS on %s:%d", *app.xds_tls_addr)
        if settings.xds_tls != "required":
            port = await xds.start(*settings.xds_addr)
            app.xds_addr = (settings.xds_addr[0], port)
        tls = None
        if settings.api_tls:
            tls = await asyncio.to_thread(api_ssl_context, certificate.current)
        sock = _listen(settings.api_addr, "--api-addr")
        app.api_addr = sock.getsockname()[:2]
        # Proxies learn it with their first snapshot (published once plane.run starts).
        app.rate_limit_address = service_address(
            settings.rate_limit, kept=settings.data_dir / "ratelimit.address"
        )
        plane.publisher.translator.rate_limit_service = app.rate_limit_address
        app.authz_address = authz_address(
            settings.authz_service, kept=settings.data_dir / "authz.address"
        )
        plane.publisher.translator.authz_service = app.authz_address
        api_app = create_api(
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
            store_problem=plane.store_health.problem if plane.store_health else None,
            dumps=dumps,
        )
        api_app.state.discovery = app.discovery  # the join answer, /trust-bundle
        admin_file = str(settings.data_dir / ADMIN_TOKEN_FILE)
        install_rate_limit_rules(api_app, rules_board, Authenticator(app.operators, admin_file))
        # what `gossamer authz serve` decides with (docs/ngac.md, "End users")
        graph_board = GraphBoard(plane, authz.engine)
        install_authz_graph(api_app, graph_board, Authenticator(app.operators, admin_file))
        auth = Authenticator(app.operators, admin_file)  # request decisions: in and out
        install_decisions(api_app, decisions, authz.engine, agents, auth)
        decision_events = DecisionEvents(authz.engine)  # decision points' reports: obligations
        install_decision_reports(api_app, decisions, decision_events, plane, auth)
        app.jwks = jwks = JwksRefresher(plane)  # keys of jwks.uri issuers, sent inline
        api_app.include_router(mesh_router(plane, jwks, auth))  # GET /v1/describe/mesh
        app.telemetry = await open_telemetry(settings.telemetry, settings.data_dir, api_app, auth)
        plane.publisher.translator.telemetry_service = app.telemetry.address
        relay.target = app.telemetry.address
        install_traces(api_app, app.telemetry.upstream, auth)  # GET /v1/traces[/{id}]
        install_backup(api_app, plane, app.ca, auth)  # POST /v1/backup, /v1/rollback
        install_ui(api_app)  # the web UI at /ui/ (static; its data needs a token)
        operators = app.operators

        async def rate_limit_token() -> str:
            return await child_token(operators, settings.data_dir)

        if settings.rate_limit.mode == "auto" and app.rate_limit_address is not None:
            app.rate_limit_child = RateLimitChild(
                rules_board,
                app.rate_limit_address,
                _local_url(app),
                rate_limit_token,
                settings.data_dir / "ratelimit.log",
                settings.rate_limit,
            )
        if settings.authz_service.mode == "auto" and app.authz_address is not None:
            app.authz_child = AuthzChild(
                plane,
                app.authz_address,
                _local_url(app),
                operators,
                settings.data_dir,
                settings.authz_service,
                tls=settings.api_tls,
            )
        api = ApiServer(api_app, sock, settings.api_limits, fd_limit=fd_limit(), tls=tls)
        if tls is not None:
            # a fresh context per certificate, swapped whole: reloading one in place (in a
            # worker thread) let a handshake start between its new chain and its new key
            certificate.subscribe(lambda fresh: api.use_tls(api_ssl_context(fresh)))
        app.api = api
        async with asyncio.TaskGroup() as tg:
            runner = tg.create_task(plane.run())
            followers = [
                tg.create_task(authz.engine.run()),
                tg.create_task(authz.audit.run()),
                tg.create_task(decisions.run()),
                tg.create_task(decision_events.run()),
                # loaded and serving xDS: the liveness clocks start now
                tg.create_task(agents.presence.run()),
                tg.create_task(certificate.run()),
                # run by one replica at a time (docs/store.md, "Leader"): the keys of
                # jwks.uri issuers, fetched and stored, sent inline to the proxies; the
                # root rotation's phases
                tg.create_task(
                    Singletons(
                        plane.leadership,
                        [("jwks refresh", jwks.run), ("root rotation", rotation.run)],
                    ).run()
                ),
                *(tg.create_task(task()) for task in replica.tasks),
            ]
            if app.rate_limit_child is not None:
                followers.append(tg.create_task(app.rate_limit_child.run()))
            if app.authz_child is not None:
                followers.append(tg.create_task(app.authz_child.run()))
            if app.telemetry.child is not None:
                followers.append(tg.create_task(app.telemetry.child.run()))
            serving = tg.create_task(api.serve())
            try:
                yield app
            finally:
                # the long polls (hosts', decision points', the rate-limit service's)
                # answer now: the API stops once its requests in progress end
                for polls in (dumps, rules_board.changes, graph_board.changes):
                    polls.release()
                api.stop()
                await serving
                runner.cancel()
                for task in followers:
                    task.cancel()
    finally:
        interpreter.close()
        await xds.stop()
        await relay.close()
        monitor.close()
        await store.close()
