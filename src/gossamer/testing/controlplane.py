"""Start a real control plane (SQLite store, xDS and API on free loopback ports) and real
Envoys attached to it.

Its REST API is HTTPS (a certificate from the mesh CA) and wants an operator token: tests
read it as a user does, from ``<data-dir>/admin.token`` (``admin_token``: it carries the
CA's fingerprint), and send it (``api_client``, verified against the mesh's roots;
``operator_env``); ``running_control_plane`` also exports it as ``GOSSAMER_TOKEN`` while it
runs, as docs/quickstart.md tells users to, so CLI commands a test runs find it (and verify
the server with its fingerprint).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx

from gossamer.agent.trust import client_context
from gossamer.controlplane.plane import ControlPlane
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.model import parse_manifest, parse_yaml
from gossamer.registry.operators import ADMIN_TOKEN_FILE
from gossamer.server.app import ControlPlaneApp, create_app
from gossamer.server.settings import Settings
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.store.base import Store
from gossamer.store.memory import MemoryStore
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import Manifest, ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor

#: the environment variable the CLI reads the operator token from
TOKEN_ENV = "GOSSAMER_TOKEN"


def admin_token(data_dir: Path) -> str:
    """The first operator token, as the control plane wrote it to ``<data_dir>/admin.token``."""
    return (data_dir / ADMIN_TOKEN_FILE).read_text(encoding="utf-8").strip()


def operator_headers(app: ControlPlaneApp) -> dict[str, str]:
    """``Authorization`` with ``app``'s admin token."""
    return {"Authorization": f"Bearer {admin_token(app.settings.data_dir)}"}


def operator_env(app: ControlPlaneApp) -> dict[str, str]:
    """This process's environment with ``GOSSAMER_TOKEN`` set to ``app``'s admin token (for
    a CLI subprocess)."""
    return {**os.environ, TOKEN_ENV: admin_token(app.settings.data_dir)}


def api_verify(app: ControlPlaneApp) -> ssl.SSLContext:
    """A client context trusting ``app``'s mesh roots only (checks the server's name)."""
    return client_context(app.trust_bundle_pem())


def ca_file(app: ControlPlaneApp) -> Path:
    """``app``'s roots as a file (``--ca-file``): ``<data-dir>/ca/root-cert.pem``."""
    return app.settings.data_dir / "ca" / "root-cert.pem"


def api_client(
    app: ControlPlaneApp, *, token: str | None = None, **options: Any
) -> httpx.AsyncClient:
    """An HTTPS client of ``app``'s REST API, verifying it against the mesh's roots and
    sending its admin token, or ``token`` (e.g. another replica's admin token: a replica
    that joined a store writes none)."""
    options.setdefault("timeout", 30)
    options.setdefault("trust_env", False)
    options.setdefault("verify", api_verify(app))
    auth = operator_headers(app) if token is None else {"Authorization": f"Bearer {token}"}
    headers = {**auth, **options.pop("headers", {})}
    return httpx.AsyncClient(base_url=app.api_url, headers=headers, **options)


@contextlib.contextmanager
def exported_token(data_dir: Path) -> Iterator[None]:
    """``GOSSAMER_TOKEN`` set to the admin token of ``data_dir`` inside, as before after."""
    before = os.environ.get(TOKEN_ENV)
    os.environ[TOKEN_ENV] = admin_token(data_dir)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TOKEN_ENV, None)
        else:
            os.environ[TOKEN_ENV] = before


@contextlib.asynccontextmanager
async def running_control_plane(data_dir: Path, **settings: Any) -> AsyncIterator[ControlPlaneApp]:
    """A control plane on free loopback ports (``settings``: more ``Settings`` fields),
    with its admin token exported as ``GOSSAMER_TOKEN`` while it runs.

    Its xDS is ``optional`` unless ``xds_tls`` says otherwise (``gossamer control-plane``
    defaults to ``required``): tests feed anonymous Envoys (``mesh_envoy``) and ADS
    clients on the plaintext ``app.xds_addr``, and hosts that joined use the mTLS port.
    Telemetry is ``off`` unless ``telemetry`` says otherwise (``gossamer control-plane``
    runs it by default: a child process and an access logger in every proxy), so tests
    that do not look at it stay fast."""
    settings.setdefault("xds_tls", "optional")
    settings.setdefault("telemetry", TelemetrySettings("off"))
    # (port 0: the server binds a free port itself; ``app.xds_addr`` says which. A port
    # picked before could be taken by another process before the bind, as in one CI run.)
    config = Settings(data_dir, api_addr=("127.0.0.1", 0), xds_addr=("127.0.0.1", 0), **settings)
    async with create_app(config) as app:
        with exported_token(data_dir):
            yield app


@contextlib.asynccontextmanager
async def memory_control_plane(store: Store | None = None) -> AsyncIterator[ControlPlane]:
    """A real, running ``ControlPlane`` over the memory store (or ``store``), with no
    sockets: its ``cache`` and ``monitor`` serve in-process streams
    (``ads_client.in_process``)."""
    store = store or MemoryStore()
    plane = ControlPlane(store, SnapshotCache(), XdsMonitor())
    await plane.load()
    try:
        async with asyncio.TaskGroup() as tg:
            runner = tg.create_task(plane.run())
            try:
                yield plane
            finally:
                runner.cancel()
    except BaseExceptionGroup as group:
        # a failure in the body (a test's assert) comes out as itself, not wrapped
        raise group.exceptions[0] if len(group.exceptions) == 1 else group from None
    finally:
        await store.close()


async def apply_manifests(
    app: ControlPlaneApp, manifests: list[Manifest], *, wait: bool = True
) -> int:
    resources = [parse_manifest(m) for m in manifests]
    result = await app.plane.apply(resources, wait=wait, wait_timeout=60)
    return result.revision


async def apply_yaml(app: ControlPlaneApp, text: str, *, wait: bool = True) -> int:
    """Apply YAML through the control plane; with ``wait`` return once proxies ACKed."""
    result = await app.plane.apply(parse_yaml(text, "test.yaml"), wait=wait, wait_timeout=60)
    return result.revision


def mesh_envoy(
    app: ControlPlaneApp, proxy: ProxyIdentity, *, delta: bool = False, workdir: Path | None = None
) -> EnvoyProcess:
    """An Envoy for ``proxy`` (sidecar or gateway) fed by ``app`` over ADS.

    Envoy binds its admin API on a port of its own choosing (port 0; ``EnvoyProcess`` reads
    it back), so no parallel test can take the port between choosing and binding it. The
    Envoy announces no admin address (no agent runs it; ``proxy-status`` shows none)."""
    bootstrap = ads_bootstrap(proxy, app.xds_addr, ("127.0.0.1", 0), delta=delta)
    return EnvoyProcess(bootstrap, workdir=workdir, name=proxy.node_id)
