"""TLS at the gateway (``Gateway.spec.tls``) through the real runner and Envoy: the
certificate is chosen by SNI, clients trusting the CA are served, TLS 1.1 is refused, a
renewed certificate file reaches new connections without a restart or a failed request,
and ``httpsRedirect`` answers 301."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from tests.integration.gateway.gateways import RunningGateway, running_gateway
from tls_certs import CertFiles, Handshake, WebCa, peer

from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.translate.names import gateway_certificate_secret
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@dataclass
class TlsGateway:
    app: ControlPlaneApp
    gw: RunningGateway
    backend: HttpBackend
    ca: WebCa
    port: int
    http_port: int
    shop: CertFiles
    api: CertFiles
    fallback: CertFiles
    certs: Path


def mesh(
    backend: tuple[str, int], port: int, http_port: int, t: TlsGateway | None, certs: Path
) -> str:
    return f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: shop}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: shop-1}}
spec:
  service: shop
  address: {backend[0]}
  sidecar: false
  ports: [{{port: {backend[1]}}}]
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  port: {port}
  tls:
    certificates:
    - hosts: [shop.example]
      certificate: {certs}/shop.pem
      privateKey: {certs}/shop.key
    - hosts: ["*.api.example"]
      certificate: {certs}/api.pem
      privateKey: {certs}/api.key
    - certificate: {certs}/fallback.pem
      privateKey: {certs}/fallback.key
    httpsRedirect: true
    httpPort: {http_port}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: shop}}
spec:
  gateways: [edge]
  rules: [{{destinations: [{{service: shop}}]}}]
"""


@pytest_asyncio.fixture
async def tls_gateway(tmp_path: Path) -> AsyncIterator[TlsGateway]:
    ca = WebCa()
    certs = tmp_path / "certs"
    certs.mkdir()
    shop = ca.issue(certs, "shop", "shop.example")
    api = ca.issue(certs, "api", "*.api.example")
    fallback = ca.issue(certs, "fallback", "fallback.example")
    port, http_port = free_port(), free_port()
    async with (
        HttpBackend("shop", host="127.0.0.3") as backend,
        running_control_plane(tmp_path / "cp") as app,
    ):
        await apply_yaml(app, mesh(backend.address, port, http_port, None, certs))
        async with running_gateway(app, tmp_path / "gw", port) as gw:
            t = TlsGateway(app, gw, backend, ca, port, http_port, shop, api, fallback, certs)
            async with httpx.AsyncClient(verify=ca.client_context(), timeout=5) as client:
                await wait_until(
                    lambda: _served(client, t), timeout=30, what="the gateway serving HTTPS"
                )
            yield t


async def _served(client: httpx.AsyncClient, t: TlsGateway) -> bool:
    try:
        r = await get(client, t, "/ready")
    except httpx.TransportError:
        return False
    return "x-backend" in r.headers


async def get(
    client: httpx.AsyncClient, t: TlsGateway, path: str, sni: str = "shop.example"
) -> httpx.Response:
    """A request to the gateway as to https://<sni>:<port> (the name resolving to it)."""
    return await client.get(
        f"https://127.0.0.1:{t.port}{path}",
        headers={"host": sni},
        extensions={"sni_hostname": sni},
    )


async def handshake(port: int, sni: str | None, ctx: ssl.SSLContext | None = None) -> Handshake:
    """One TLS handshake with the gateway sending ``sni`` (None: no SNI); what it showed."""
    if ctx is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2", "http/1.1"])
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname=sni or None
    )
    try:
        obj = writer.get_extra_info("ssl_object")
        names, serial = peer(obj.getpeercert(binary_form=True))
        return Handshake(names, serial, obj.version(), obj.selected_alpn_protocol())
    finally:
        writer.close()


async def test_sni_chooses_the_certificate_and_clients_trusting_the_ca_are_served(
    tls_gateway: TlsGateway,
) -> None:
    t = tls_gateway
    async with httpx.AsyncClient(verify=t.ca.client_context(), timeout=5) as client:
        r = await get(client, t, "/hello")
        assert r.status_code == 200 and r.headers["x-backend"] == "shop"
        # the app learns the client came over TLS
        assert r.json()["headers"]["x-forwarded-proto"] == "https"
        r = await get(client, t, "/hello", sni="v1.api.example")
        assert r.status_code == 200
    assert (await handshake(t.port, "shop.example")).serial == t.shop.serial
    assert (await handshake(t.port, "v1.api.example")).serial == t.api.serial
    # any other name, and no name at all, get the certificate listed without hosts
    assert (await handshake(t.port, "other.example")).serial == t.fallback.serial
    assert (await handshake(t.port, None)).serial == t.fallback.serial
    shake = await handshake(t.port, "shop.example")
    assert shake.alpn == "h2" and shake.version in {"TLSv1.2", "TLSv1.3"}
    # a client that trusts the CA refuses a name the certificate it got does not cover
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(t.port, "other.example", t.ca.client_context())


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_1_1_is_refused_and_1_2_taken(tls_gateway: TlsGateway) -> None:
    t = tls_gateway
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.set_ciphers("ALL:@SECLEVEL=0")
    old.minimum_version = ssl.TLSVersion.TLSv1_1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError) as refused:
        await handshake(t.port, "shop.example", old)
    # the gateway answered a TLS 1.1 hello with a protocol version alert (the client sent one)
    assert "PROTOCOL_VERSION" in str(refused.value).upper(), refused.value
    tls12 = t.ca.client_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    assert (await handshake(t.port, "shop.example", tls12)).version == "TLSv1.2"


async def test_https_redirect_answers_301_to_the_same_url(tls_gateway: TlsGateway) -> None:
    t = tls_gateway
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(
            f"http://127.0.0.1:{t.http_port}/cart/items?id=7",
            headers={"host": f"shop.example:{t.http_port}"},
        )
    assert r.status_code == 301
    assert r.headers["location"] == f"https://shop.example:{t.port}/cart/items?id=7"
    assert t.backend.requests == 1  # only the fixture's readiness request reached the app


async def test_a_renewed_certificate_reaches_new_connections_without_restart_or_failure(
    tls_gateway: TlsGateway,
) -> None:
    t = tls_gateway
    runner = t.gw.runner
    pid = runner.statistics().pid
    sent, failed = 0, []
    stop = asyncio.Event()

    async def load() -> None:
        # a new connection per request, so each one sees the certificate served right now
        nonlocal sent
        async with httpx.AsyncClient(
            verify=t.ca.client_context(),
            timeout=5,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            while not stop.is_set() and sent < 20_000:
                sent += 1
                try:
                    r = await get(client, t, "/load")
                    if r.status_code != 200:
                        failed.append(str(r.status_code))
                except httpx.TransportError as e:
                    failed.append(repr(e))

    async with httpx.AsyncClient(verify=t.ca.client_context(), timeout=10) as slow_client:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(load())
            # a request in flight on a connection made with the old certificate
            slow = tg.create_task(get(slow_client, t, "/delay/1500"))
            await wait_until(lambda: sent >= 20, timeout=10, what="load running")
            renewed = t.ca.issue(t.certs, "shop", "shop.example")

            async def served_renewed() -> bool:
                return (await handshake(t.port, "shop.example")).serial == renewed.serial

            await wait_until(served_renewed, timeout=20, what="the renewed certificate served")
            before = sent
            await wait_until(lambda: sent >= before + 20, timeout=10, what="load after renewal")
            stop.set()
        assert slow.result().status_code == 200
    assert failed == [], failed[:5]
    assert sent > 40
    assert runner.statistics().pid == pid and runner.statistics().restarts == 0
    # Envoy ACKed the new content over SDS; the other certificates were left as they were
    name = gateway_certificate_secret(str(t.shop.certificate), str(t.shop.key))
    node = ProxyIdentity("gateway", "default", "edge").node_id
    served = runner.certificates.served[name].secret.version
    assert runner.sds.proxies[node].acked[name] == served
    assert any("serving renewed certificate" in m for m in t.gw.messages), t.gw.messages
    assert (await handshake(t.port, "v1.api.example")).serial == t.api.serial
