"""sslyze against Gossamer's TLS listeners: a STRICT sidecar's inbound (scanned as a mesh
client presenting its certificate) and a gateway terminating TLS accept TLS 1.2 and 1.3
only, with ECDHE key exchange and AEAD ciphers only (no CBC, no RSA key exchange, no
NULL/EXPORT/RC4/3DES)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.integration.tls_scan import scan
from tests.integration.xds.test_mtls_traffic import WEB_ID, ThrowawayCa, pair

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_a_strict_sidecar_takes_tls_1_2_and_up_with_strong_suites_only(
    tmp_path: Path,
) -> None:
    ca = ThrowawayCa("mesh root")
    me = ca.issue(WEB_ID)
    (tmp_path / "client.pem").write_bytes(me.chain)
    (tmp_path / "client.key").write_bytes(me.key)
    async with pair("strict", ca) as p:
        found = await asyncio.to_thread(
            scan,
            p.inbound,
            sni="reviews.default",
            client_certificate=(tmp_path / "client.pem", tmp_path / "client.key"),
        )
    assert found.versions() == ["TLS 1.2", "TLS 1.3"], found.accepted
    assert found.weak_suites() == [], found.accepted
