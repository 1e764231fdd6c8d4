from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import prometheus_client
import pytest
import pytest_asyncio

from gossamer.api.app import create_api
from gossamer.testing.fake_controlplane import FakeControlPlane


@pytest.fixture
def fake() -> FakeControlPlane:
    return FakeControlPlane()


@pytest.fixture
def registry() -> prometheus_client.CollectorRegistry:
    return prometheus_client.CollectorRegistry()


@pytest_asyncio.fixture
async def client(
    fake: FakeControlPlane, registry: prometheus_client.CollectorRegistry
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_api(fake, registry=registry)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c
