from __future__ import annotations

import socket

import pytest

from gossamer.errors import ConfigError, PollTimeoutError
from gossamer.polling import wait_until
from gossamer.testing.ports import free_port, loopback_host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "127.0.0.3"])
def test_free_port_can_be_bound_on_that_host(host: str) -> None:
    port = free_port(host)
    with socket.socket() as sock:
        sock.bind((host, port))
        assert sock.getsockname() == (host, port)


def test_free_port_rejects_a_non_ip_host() -> None:
    with pytest.raises(ConfigError, match="not an IP address"):
        free_port("localhost")


def test_loopback_hosts() -> None:
    assert [loopback_host(n) for n in (0, 1, 2, 253)] == [
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.254",
    ]
    for bad in (-1, 254):
        with pytest.raises(ConfigError, match=r"0\.\.253"):
            loopback_host(bad)


@pytest.mark.asyncio
async def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = 0

    async def third_time() -> int | None:
        nonlocal calls
        calls += 1
        return calls if calls >= 3 else None

    assert await wait_until(third_time, timeout=10, interval=0.001) == 3


@pytest.mark.asyncio
async def test_wait_until_times_out_naming_what_it_waited_for() -> None:
    with pytest.raises(PollTimeoutError, match=r"the moon.*last value: 0"):
        await wait_until(lambda: 0, timeout=0.05, interval=0.01, what="the moon")


@pytest.mark.asyncio
async def test_wait_until_propagates_predicate_errors() -> None:
    def boom() -> bool:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await wait_until(boom, timeout=10)
