"""A real API server (uvicorn on a free loopback port, in a thread) around a FakeControlPlane."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import prometheus_client
import pytest
import uvicorn
from typer.testing import CliRunner

from gossamer.api.app import create_api
from gossamer.testing.fake_controlplane import FakeControlPlane

from .files import SHOP


@dataclass
class ApiServer:
    url: str
    fake: FakeControlPlane


@contextlib.contextmanager
def serving(fake: FakeControlPlane) -> Iterator[ApiServer]:
    """A real API server around ``fake`` until the block ends."""
    app = create_api(fake, metrics=prometheus_client.CollectorRegistry())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not uv.started:
            assert thread.is_alive(), "the API server thread died while starting"
            assert time.monotonic() < deadline, "the API server did not start within 20 s"
            time.sleep(0.01)
        yield ApiServer(f"http://127.0.0.1:{port}", fake)
    finally:
        uv.should_exit = True
        thread.join(timeout=20)
        sock.close()
    assert not thread.is_alive(), "the API server thread did not stop"


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with serving(FakeControlPlane()) as api:
        yield api


@pytest.fixture
def runner(server: ApiServer) -> CliRunner:
    """Runs commands against ``server`` (through GOSSAMER_SERVER) on a wide terminal."""
    return CliRunner(env={"GOSSAMER_SERVER": server.url, "COLUMNS": "250", "NO_COLOR": "1"})


@pytest.fixture
def offline() -> CliRunner:
    """Runs commands with no server anywhere near."""
    return CliRunner(env={"GOSSAMER_SERVER": None, "COLUMNS": "250", "NO_COLOR": "1"})


@pytest.fixture
def shop_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(SHOP)
    return path
