"""The control plane refuses to serve plaintext beyond loopback: plaintext xDS without
--insecure-listen (issue 7, R10), a plaintext API (--api-tls off) at all; over TLS any
address is fine (issue 9).

Nothing here binds a non-loopback address: binding is made to fail the test, so each
refusal is shown to happen before any socket is bound (and an accepted address is shown
by the bind that follows the checks).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gossamer.cli.main import app as cli
from gossamer.errors import ConfigError
from gossamer.server.app import create_app
from gossamer.server.listen import check_listen_addresses, is_loopback
from gossamer.server.settings import Settings


@pytest.fixture
def no_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    def bind(self: socket.socket, address: object) -> None:
        raise AssertionError(f"bound {address!r} before refusing")

    monkeypatch.setattr(socket.socket, "bind", bind)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.5", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.12", False),
        ("::ffff:10.0.0.1", False),
        ("cp.example", False),  # names are never resolved: write an IP address
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_insecure_listen_allows_any_address() -> None:
    check_listen_addresses({"--api-addr": ("0.0.0.0", 7070)}, insecure_listen=True)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("api", "xds", "flag"),
    [
        (("127.0.0.1", 0), ("::", 0), "--xds-addr"),
        (("127.0.0.1", 0), ("10.1.2.3", 0), "--xds-addr"),
    ],
)
async def test_create_app_refuses_plaintext_xds_before_binding(
    tmp_path: Path,
    no_binding: None,
    api: tuple[str, int],
    xds: tuple[str, int],
    flag: str,
) -> None:
    settings = Settings(tmp_path / "data", api_addr=api, xds_addr=xds, xds_tls="optional")
    with pytest.raises(ConfigError) as refused:
        async with create_app(settings):
            pass
    message = str(refused.value)
    assert message.startswith(f"{flag}: ")
    assert "not a loopback address" in message and "--insecure-listen" in message
    assert not (tmp_path / "data").exists(), "the refusal came after opening the store"


@pytest.mark.asyncio
@pytest.mark.parametrize("insecure_listen", [False, True])
async def test_a_plaintext_api_is_refused_off_loopback_even_with_insecure_listen(
    tmp_path: Path, no_binding: None, insecure_listen: bool
) -> None:
    settings = Settings(
        tmp_path / "data",
        api_addr=("10.1.2.3", 0),
        api_tls=False,
        insecure_listen=insecure_listen,
    )
    with pytest.raises(ConfigError) as refused:
        async with create_app(settings):
            pass
    assert str(refused.value).startswith("--api-tls off: the REST API may serve plaintext")
    assert not (tmp_path / "data").exists(), "the refusal came after opening the store"


@pytest.mark.asyncio
async def test_tls_on_api_and_xds_listens_anywhere_without_insecure_listen(
    tmp_path: Path, no_binding: None
) -> None:
    """HTTPS API on 0.0.0.0 and xDS in required mode: the checks pass, and the first
    Python socket bound is the API's (the test's bind refuses it, so nothing listens)."""
    settings = Settings(
        tmp_path / "data",
        api_addr=("0.0.0.0", 0),
        xds_addr=("127.0.0.1", 0),
        xds_tls="required",
    )
    with pytest.raises(AssertionError, match=r"bound \('0.0.0.0', 0\) before refusing"):
        async with create_app(settings):
            pass


def test_the_command_refuses_a_plaintext_api_off_loopback(tmp_path: Path, no_binding: None) -> None:
    result = CliRunner().invoke(
        cli,
        ["control-plane", "--data-dir", str(tmp_path / "d"), "--api-addr", "0.0.0.0:7070",
         "--api-tls", "off"],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: --api-tls off: the REST API may serve plaintext")
    assert "Traceback" not in result.output


def test_the_command_passes_insecure_listen_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gossamer.server.run

    seen: list[dict[str, object]] = []
    monkeypatch.setattr(gossamer.server.run, "main", lambda *a, **kw: seen.append(kw))
    result = CliRunner().invoke(
        cli,
        ["control-plane", "--api-addr", "0.0.0.0:7070", "--insecure-listen",
         "--api-header-timeout", "2.5", "--api-max-connections", "50"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seen[0]["insecure_listen"] is True
    limits = seen[0]["api_limits"]
    assert (limits.header_timeout, limits.max_connections) == (2.5, 50)  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_xds_listens_on_an_ipv6_loopback_address() -> None:
    """``--xds-addr [::1]:PORT`` (brackets stripped by parse_addr) reaches gRPC bracketed."""
    from prometheus_client import CollectorRegistry

    from gossamer.xds.cache import SnapshotCache
    from gossamer.xds.monitor import XdsMonitor
    from gossamer.xds.server import XdsServer

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    server = XdsServer(SnapshotCache(), XdsMonitor(CollectorRegistry()))
    port = await server.start("::1", 0)
    try:
        with socket.create_connection(("::1", port), timeout=5):
            pass
    finally:
        await server.stop()
