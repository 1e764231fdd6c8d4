from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from store_helpers import StoreMaker


@pytest_asyncio.fixture(params=["memory", "sqlite"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreMaker]:
    """Opens stores of each backend in turn; every contract test runs against both."""
    maker = StoreMaker(request.param, tmp_path)
    yield maker
    await maker.close_all()
