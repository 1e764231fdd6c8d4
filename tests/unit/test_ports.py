"""Free ports come from outside the ephemeral range, in sequence per process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gossamer.errors import ConfigError
from gossamer.ports import PICK_LOW, PortPicker, ephemeral_range, free_port


def test_free_ports_are_outside_the_ephemeral_range_and_differ_unbound() -> None:
    low, high = ephemeral_range()
    ports = [free_port("127.0.0.1") for _ in range(20)]
    assert len(set(ports)) == 20  # none bound meanwhile, none handed out twice
    assert all(PICK_LOW <= p < low or p > high for p in ports), (ports, low, high)


def test_a_port_in_use_is_skipped_and_the_sequence_wraps() -> None:
    host = "127.0.0.77"  # (nothing else binds this simulated host)
    with socket.socket() as held:
        held.bind((host, 0))
        taken = held.getsockname()[1]
        picker = PortPicker(taken - 1, taken + 1, taken)  # taken, then taken - 1
        assert picker.pick(host) == taken - 1
        with socket.socket() as also:
            also.bind((host, taken - 1))
            with pytest.raises(ConfigError, match="every one is in use"):
                picker.pick(host)


def test_an_address_not_of_this_host_fails_at_once_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"cannot bind a port on 192\.0\.2\.7.*this host"):
        PortPicker(20000, 30000, 20000).pick("192.0.2.7")


def test_the_ephemeral_range_is_read_from_proc(tmp_path: Path) -> None:
    (tmp_path / "sys/net/ipv4").mkdir(parents=True)
    (tmp_path / "sys/net/ipv4/ip_local_port_range").write_text("40000\t50000\n")
    assert ephemeral_range(tmp_path) == (40000, 50000)
    picker = PortPicker.for_this_process(tmp_path)
    assert picker is not None and (picker.low, picker.high) == (PICK_LOW, 40000)
    # a host whose ephemeral range starts low leaves no room: the OS picks instead
    (tmp_path / "sys/net/ipv4/ip_local_port_range").write_text("1024 65000\n")
    assert PortPicker.for_this_process(tmp_path) is None
    assert ephemeral_range(tmp_path / "nowhere") == (32768, 60999)
