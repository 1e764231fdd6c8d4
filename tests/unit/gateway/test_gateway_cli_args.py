"""``gossamer gateway`` option parsing: addresses and where xDS is."""

from __future__ import annotations

import pytest

from gossamer.cli.gateway import DEFAULT_XDS_PORT, parse_host_port, xds_address
from gossamer.errors import ConfigError


def test_xds_address_defaults_to_the_server_host() -> None:
    assert xds_address("http://127.0.0.5:7070", None) == ("127.0.0.5", DEFAULT_XDS_PORT)
    assert xds_address("http://127.0.0.5:7070", "127.0.0.9:19000") == ("127.0.0.9", 19000)


@pytest.mark.parametrize("text", ["127.0.0.1", ":80", "127.0.0.1:x", "127.0.0.1:70000"])
def test_bad_host_port_names_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match="--admin-addr"):
        parse_host_port(text, "--admin-addr")


def test_ipv6_brackets() -> None:
    assert parse_host_port("[::1]:9901", "--admin-addr") == ("::1", 9901)
