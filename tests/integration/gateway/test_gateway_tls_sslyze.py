"""sslyze against the gateway's TLS port: TLS 1.2 and 1.3 only (SSL 2/3, TLS 1.0/1.1
refused), ECDHE + AEAD suites only, for each certificate SNI chooses."""

from __future__ import annotations

import asyncio

import pytest
from test_gateway_tls import TlsGateway, tls_gateway  # noqa: F401 (a fixture)
from tests.integration.tls_scan import scan

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest.mark.parametrize("sni", ["shop.example", "other.example"])
async def test_the_gateway_takes_tls_1_2_and_up_with_strong_suites_only(
    tls_gateway: TlsGateway,  # noqa: F811
    sni: str,
) -> None:
    found = await asyncio.to_thread(scan, ("127.0.0.1", tls_gateway.port), sni=sni)
    assert found.versions() == ["TLS 1.2", "TLS 1.3"], found.accepted
    assert found.weak_suites() == [], found.accepted
    assert found.accepted["TLS 1.2"], found.accepted
