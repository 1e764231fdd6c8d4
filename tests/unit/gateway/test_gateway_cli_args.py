"""``gossamer gateway`` option parsing: addresses and where xDS is."""

from __future__ import annotations

import pytest

from gossamer.cli.gateway import DEFAULT_XDS_PORT, _check_servers, xds_address
from gossamer.errors import ConfigError
from gossamer.ports import host_ports, parse_host_port, parse_host_ports


def test_xds_address_defaults_to_the_server_host() -> None:
    assert xds_address("http://127.0.0.5:7070", None) == (("127.0.0.5", DEFAULT_XDS_PORT),)
    assert xds_address("http://127.0.0.5:7070", "127.0.0.9:19000") == (("127.0.0.9", 19000),)


def test_xds_address_names_every_replica() -> None:
    given = "127.0.0.9:19000, cp-2.internal:18000,[::1]:18000"
    replicas = (("127.0.0.9", 19000), ("cp-2.internal", 18000), ("::1", 18000))
    assert xds_address("http://127.0.0.5:7070", given) == replicas
    assert parse_host_ports(host_ports(replicas), "--xds") == replicas


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("127.0.0.1:18000,", "'' is not HOST:PORT"),
        ("127.0.0.1:18000,127.0.0.1:0", "'127.0.0.1:0' is not HOST:PORT with a port 1..65535"),
        ("127.0.0.1:18000,127.0.0.1:18000", "names an address twice"),
    ],
)
def test_bad_replica_lists_name_the_option_and_the_address(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match="--xds-addr") as e:
        xds_address("http://127.0.0.5:7070", text)
    assert says in str(e.value)


@pytest.mark.parametrize("text", ["127.0.0.1", ":80", "127.0.0.1:x", "127.0.0.1:70000"])
def test_bad_host_port_names_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match="--admin-addr"):
        parse_host_port(text, "--admin-addr")


def test_ipv6_brackets() -> None:
    assert parse_host_port("[::1]:9901", "--admin-addr") == ("::1", 9901)


def test_server_takes_every_replica_and_refuses_a_bad_one() -> None:
    from typer.testing import CliRunner

    from gossamer.cli.main import app

    bad = "http://127.0.0.1:7070,ftp://cp-2:7070"
    runner = CliRunner(env={"COLUMNS": "250", "NO_COLOR": "1"})
    result = runner.invoke(app, ["gateway", "--name", "edge", "--server", bad])
    assert result.exit_code == 2
    assert "'ftp://cp-2:7070' is not an http(s) URL" in result.output
    assert _check_servers("http://a:1/, https://b:2") == "http://a:1,https://b:2"
