"""``bench/fuzz_xds.py`` at a small size: hostile ADS streams against a real control plane
while a well-behaved fake Envoy holds its config. Fails when the server answers a
decodable request with INTERNAL or UNKNOWN, the good client loses its stream, a fresh
client is not served afterwards, or the process's RSS grows past the bound."""

from __future__ import annotations

import asyncio
import functools
import re

import pytest
from tests.integration.bench.bench_run import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@functools.cache
def _run() -> tuple[int, str, dict[str, str]]:
    """One bench run shared by the tests below (~15 s)."""
    code, out = asyncio.run(
        run_bench(
            "fuzz_xds.py", "--wait", "1", "--flood", "300", "--max-rss-growth", "150", within=60
        )
    )
    summary = re.search(r"^FUZZ_XDS (.*)$", out, re.M)
    assert summary is not None, out[-5000:]
    return code, out, dict(kv.split("=") for kv in summary.group(1).split())


def test_the_ads_server_survives_hostile_streams_and_never_fails_internally() -> None:
    _, out, fields = _run()
    assert fields["attacks"] == "18", out
    assert {k: fields[k] for k in ("internal", "good_client_lost", "rss_over")} == {
        "internal": "0",
        "good_client_lost": "0",
        "rss_over": "0",
    }, out
    assert fields["fresh_client_ok"] == "1", out
    # refused with a clear status: no node, a malformed node id, one its metadata contradicts
    assert re.search(r"^missing node +INVALID_ARGUMENT: the first request", out, re.M), out
    assert re.search(r"^malformed node id +INVALID_ARGUMENT: ", out, re.M), out
    assert re.search(r"^delta node id not its metadata +INVALID_ARGUMENT: ", out, re.M), out
    # a proxy nobody registered gets nothing (fail static), and its stream stays open
    assert re.search(r"^unknown node id +open \(0 responses\)", out, re.M), out


def test_garbage_bytes_on_an_ads_stream_are_refused_as_invalid_argument() -> None:
    code, out, _ = _run()
    for stream, message in (
        ("garbage bytes", "DiscoveryRequest"),
        ("delta garbage bytes", "DeltaDiscoveryRequest"),
    ):
        refusal = rf"^{stream} +INVALID_ARGUMENT: a message on this stream is not a {message}"
        assert re.search(refusal, out, re.M), out
    assert code == 0, out
