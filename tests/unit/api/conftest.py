from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import httpx
import prometheus_client
import pytest
import pytest_asyncio

from gossamer.api.app import create_api
from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.service import ControlPlaneService
from gossamer.errors import GossamerError, NotFoundError
from gossamer.store.base import Fence
from gossamer.store.memory import MemoryStore
from gossamer.testing.ads_client import in_process
from gossamer.testing.controlplane import memory_control_plane
from gossamer.testing.fake_controlplane import FakeControlPlane
from gossamer.types import Manifest, ProxyIdentity, ResourceKey
from gossamer.xds.resources import ResourceType

from .shop import proxy


@pytest.fixture
def fake() -> FakeControlPlane:
    return FakeControlPlane()


@pytest.fixture
def metrics() -> prometheus_client.CollectorRegistry:
    return prometheus_client.CollectorRegistry()


@pytest_asyncio.fixture
async def client(
    fake: FakeControlPlane, metrics: prometheus_client.CollectorRegistry
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_api(fake, metrics=metrics)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


# -- the ControlPlaneService contract, kept by the fake and the real control plane ----------


class FailingStore(MemoryStore):
    """A memory store whose next write fails (to check that a failed apply changes nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail: GossamerError | None = None

    async def apply(
        self,
        puts: Sequence[Manifest] = (),
        deletes: Sequence[ResourceKey] = (),
        *,
        fence: Fence | None = None,
        unchanged_since: int | None = None,
    ) -> int:
        error, self.fail = self.fail, None
        if error is not None:
            raise error
        return await super().apply(puts, deletes, fence=fence, unchanged_since=unchanged_since)


class Contract:
    """One ``ControlPlaneService`` and the test controls both implementations offer."""

    def __init__(self, service: ControlPlaneService, stack: contextlib.AsyncExitStack) -> None:
        self.service = service
        self._stack = stack
        self._clients: dict[str, contextlib.AsyncExitStack] = {}

    @property
    def revision(self) -> int:
        if isinstance(self.service, FakeControlPlane):
            return self.service.revision
        assert isinstance(self.service, ControlPlane) and self.service.model is not None
        return self.service.model.revision

    async def add_proxy(self, name: str, *, acks: bool = True) -> None:
        """A sidecar ``sidecar~default~<name>``; ``acks=False``: it NACKs every update."""
        if isinstance(self.service, FakeControlPlane):
            self.service.add_proxy(proxy(name), acks=acks)
            return
        assert isinstance(self.service, ControlPlane)
        ident = ProxyIdentity("sidecar", "default", name)
        stack = contextlib.AsyncExitStack()
        await self._stack.enter_async_context(stack)
        client = await stack.enter_async_context(
            in_process(ident, self.service.cache, self.service.monitor, delta=True)
        )
        await client.wait_for(
            lambda c: self.service.monitor.synced(  # type: ignore[union-attr]
                ident.node_id,
                self.service.cache.get(ident.node_id),  # type: ignore[union-attr]
            ),
            what="the first config ACKed",
        )
        if not acks:
            for t in ResourceType:
                client.reject(t, reason="this proxy rejects everything")
        self._clients[ident.node_id] = stack

    async def remove_proxy(self, node_id: str) -> None:
        if isinstance(self.service, FakeControlPlane):
            self.service.remove_proxy(node_id)
            return
        stack = self._clients.pop(node_id, None)
        if stack is None:
            raise NotFoundError(f"no proxy {node_id!r}")
        await stack.aclose()

    def fail_next(self, error: GossamerError) -> None:
        if isinstance(self.service, FakeControlPlane):
            self.service.fail_next(error)
        else:
            assert isinstance(self.service, ControlPlane)
            assert isinstance(self.service.store, FailingStore)
            self.service.store.fail = error


@pytest_asyncio.fixture(params=["fake", "real"])
async def contract(request: pytest.FixtureRequest) -> AsyncIterator[Contract]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "fake":
            yield Contract(FakeControlPlane(), stack)
        else:
            plane = await stack.enter_async_context(memory_control_plane(FailingStore()))
            yield Contract(plane, stack)
