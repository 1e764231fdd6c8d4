from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from store_helpers import StoreMaker

from gossamer.testing.etcd import EtcdServer, etcd_installed

#: why the etcd backend's runs are skipped where there is no etcd binary
NO_ETCD = "no etcd binary (Debian's etcd-server; scripts/install installs it)"


@pytest_asyncio.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("etcd", marks=pytest.mark.skipif(not etcd_installed(), reason=NO_ETCD)),
    ]
)
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreMaker]:
    """Opens stores of each backend in turn; every contract test runs against all three
    (etcd: a real etcd of its own per test, on free loopback ports)."""
    etcd = None
    if request.param == "etcd":
        etcd = EtcdServer(tmp_path / "etcd")
        await etcd.start()
    maker = StoreMaker(request.param, tmp_path, etcd)
    try:
        yield maker
    finally:
        await maker.close_all()
        if etcd is not None:
            await etcd.stop()
