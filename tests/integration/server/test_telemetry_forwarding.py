"""The control plane's API forwards the telemetry query API: with ``--telemetry auto`` its
child answers (and a killed child is a 503 saying so, then answers again once restarted);
``off`` and a service elsewhere that does not answer are 503s saying why; the control
plane's own auth comes first. A bad ``--telemetry*`` flag is refused naming it before
anything is opened."""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from gossamer.errors import ConfigError
from gossamer.polling import wait_until
from gossamer.server.app import create_app
from gossamer.server.settings import Settings
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.testing.controlplane import api_client, running_control_plane
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]


async def test_off_is_a_503_naming_the_flag(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path) as app, api_client(app) as api:
        assert app.plane.publisher.translator.telemetry_service is None
        r = await api.get("/v1/topology", params={"since": "5m"})
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "telemetry_unavailable"
        assert "--telemetry off" in r.text


async def test_a_service_elsewhere_that_does_not_answer_is_a_503(tmp_path: Path) -> None:
    grpc_port, http_port = free_port(), free_port()
    settings = TelemetrySettings(f"127.0.0.1:{grpc_port}", http=("127.0.0.1", http_port))
    async with running_control_plane(tmp_path, telemetry=settings) as app, api_client(app) as api:
        service = app.plane.publisher.translator.telemetry_service
        assert service is not None and service.port == grpc_port
        r = await api.get("/v1/series")
        assert r.status_code == 503 and "telemetry.token" in r.text, r.text
        (tmp_path / "telemetry.token").write_text("x" * 32)
        r = await api.get("/v1/series")
        assert r.status_code == 503 and f"127.0.0.1:{http_port}" in r.text, r.text


async def test_the_auto_child_answers_and_comes_back_after_a_kill(tmp_path: Path) -> None:
    settings = TelemetrySettings("auto")
    async with running_control_plane(tmp_path, telemetry=settings) as app, api_client(app) as api:
        assert app.telemetry is not None and app.telemetry.child is not None
        child = app.telemetry.child

        async def status() -> int:
            return (await api.get("/v1/topology", params={"since": "5m"})).status_code

        await wait_until(lambda: _is(status, 200), timeout=30, what="the child answering")
        assert (tmp_path / "telemetry.token").stat().st_mode & 0o777 == 0o600
        async with httpx.AsyncClient(base_url=app.api_url, verify=False) as anonymous:
            assert (await anonymous.get("/v1/topology")).status_code == 401
        assert child.process is not None
        os.kill(child.process.pid, signal.SIGKILL)
        r = await wait_until(
            lambda: _answer(api, 503), timeout=10, interval=0.02, what="a 503 while it is down"
        )
        assert "did not answer" in r.text and "telemetry.log" in r.text, r.text
        await wait_until(lambda: _is(status, 200), timeout=30, what="the restarted child")
        assert child.starts == 2


async def _is(status: Callable[[], Awaitable[int]], expected: int) -> bool:
    return await status() == expected


async def _answer(api: httpx.AsyncClient, expected: int) -> httpx.Response | None:
    r = await api.get("/v1/topology")
    return r if r.status_code == expected else None


@pytest.mark.parametrize(
    ("settings", "flag"),
    [
        (TelemetrySettings("everywhere"), "--telemetry"),
        (TelemetrySettings(listen=("0.0.0.0", 0)), "--telemetry-listen"),
        (TelemetrySettings(http=("192.0.2.1", 0)), "--telemetry-http"),
    ],
)
async def test_a_bad_telemetry_setting_is_refused_before_anything_is_opened(
    tmp_path: Path, settings: TelemetrySettings, flag: str
) -> None:
    data = tmp_path / "cp"
    config = Settings(
        data, api_addr=("127.0.0.1", 0), xds_addr=("127.0.0.1", 0), telemetry=settings
    )
    with pytest.raises(ConfigError) as refused:
        async with create_app(config):
            pass
    assert str(refused.value).startswith(flag), str(refused.value)
    assert not data.exists()
