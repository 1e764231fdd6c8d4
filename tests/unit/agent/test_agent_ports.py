import os
import socket
from collections.abc import Iterator

import pytest

from gossamer.errors import ConfigError
from gossamer.ports import free_port, is_free, port_holder, require_free


@pytest.fixture
def listening() -> Iterator[tuple[str, int]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.3", 0))
        sock.listen(1)
        yield sock.getsockname()


def test_holder_of_a_listening_port_is_this_process(listening: tuple[str, int]) -> None:
    host, port = listening
    holder = port_holder(host, port)
    assert holder is not None and holder.startswith(f"pid {os.getpid()} (")
    assert not is_free(host, port)
    with pytest.raises(ConfigError) as info:
        require_free(host, port, "inbound port of workload default/web-1")
    message = str(info.value)
    assert f"127.0.0.3:{port} is held by pid {os.getpid()}" in message
    assert message.startswith("inbound port of workload default/web-1")


def test_wildcard_listener_holds_every_address() -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        holder = port_holder("127.0.0.9", port)
    assert holder is not None and f"pid {os.getpid()}" in holder


def test_free_port_has_no_holder() -> None:
    port = free_port("127.0.0.4")
    assert is_free("127.0.0.4", port)
    assert port_holder("127.0.0.4", port) is None
    require_free("127.0.0.4", port, "x")


def test_connected_but_not_listening_is_not_a_holder(listening: tuple[str, int]) -> None:
    with socket.create_connection(listening) as client:
        local = client.getsockname()
        assert port_holder(*local) is None


def test_not_an_ip() -> None:
    with pytest.raises(ConfigError, match="not an IP address"):
        free_port("localhost")
