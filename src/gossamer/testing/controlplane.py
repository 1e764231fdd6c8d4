"""Start a real control plane (SQLite store, xDS and API on free loopback ports) and real
Envoys attached to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from gossamer.controlplane.plane import ControlPlane
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.model import parse_manifest, parse_yaml
from gossamer.server.app import ControlPlaneApp, Settings, create_app
from gossamer.store.base import Store
from gossamer.store.memory import MemoryStore
from gossamer.testing.ports import free_port
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import Manifest, ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor


@contextlib.asynccontextmanager
async def running_control_plane(data_dir: Path) -> AsyncIterator[ControlPlaneApp]:
    settings = Settings(data_dir, api_addr=("127.0.0.1", 0), xds_addr=("127.0.0.1", free_port()))
    async with create_app(settings) as app:
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
    """An Envoy for ``proxy`` (sidecar or gateway) fed by ``app`` over ADS."""
    admin = ("127.0.0.1", free_port())
    bootstrap = ads_bootstrap(
        proxy, app.xds_addr, admin, delta=delta, metadata={"admin": f"{admin[0]}:{admin[1]}"}
    )
    return EnvoyProcess(bootstrap, workdir=workdir, name=proxy.node_id)
