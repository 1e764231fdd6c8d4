"""``--store etcd://...``: what it names, and what it refuses with a message."""

from __future__ import annotations

import pytest

from gossamer.errors import ConfigError
from gossamer.store.etcd_url import EtcdLocation, parse_etcd_url
from gossamer.store.factory import is_etcd


@pytest.mark.parametrize(
    ("text", "endpoints", "prefix"),
    [
        ("etcd://127.0.0.1:2379", ("127.0.0.1:2379",), "/gossamer"),
        ("ETCD://h1:2379,h2:2380/", ("h1:2379", "h2:2380"), "/gossamer"),
        ("etcd://h1,h2:1/mesh/a/", ("h1:2379", "h2:1"), "/mesh/a"),
        ("etcd://[::1]:2379,[fd00::2]", ("[::1]:2379", "[fd00::2]:2379"), "/gossamer"),
    ],
)
def test_etcd_urls(text: str, endpoints: tuple[str, ...], prefix: str) -> None:
    assert is_etcd(text)
    assert parse_etcd_url(text) == EtcdLocation(endpoints, prefix)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("etcd:/h1:2379", "not an etcd URL"),
        ("etcd://", "empty member"),
        ("etcd://h1:2379,,h2:2379", "empty member"),
        ("etcd://h1:0", "no valid port"),
        ("etcd://h1:x", "no valid port"),
        ("etcd://::1:2379", "IPv6 member in brackets"),
        ("etcd://[zz]:2379", "not an IPv6 address"),
        ("etcd://h1:2379,h1:2379", "names a member twice"),
        ("etcd://h1:2379/p?x=1", "no query"),
        ("etcd://user@h1:2379", "not HOST:PORT"),
    ],
)
def test_bad_etcd_urls(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_etcd_url(text)
