"""mTLS between two real Envoys (web-1 calls reviews-1), from the translator's own config.

TEST HARNESS: the translated resources are wrapped in static bootstraps, and the SDS
references (``identity``, ``trust-bundle`` from ``gossamer-sds``) are rewritten to static
secrets of the same names holding certificates made here by a throwaway CA. Everything
else (listeners, filter chains, TLS contexts, SAN checks, XFCC, the EDS mark and the
clusters' transport socket match) is exactly what the control plane sends.
"""

from __future__ import annotations

import contextlib
import datetime
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.testing.backends import HttpBackend
from gossamer.testing.ports import free_port
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.proxy import Translator
from gossamer.translate.tls import TlsState
from gossamer.types import ProxyIdentity, spiffe_id

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

TD = "shop.local"
WEB = ProxyIdentity("sidecar", "default", "web-1")
REVIEWS = ProxyIdentity("sidecar", "default", "reviews-1")
WEB_ID = spiffe_id(TD, "default", "web")


# -- a throwaway CA (test only) ------------------------------------------------------------


@dataclass(frozen=True)
class Pem:
    chain: bytes
    key: bytes


class ThrowawayCa:
    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, uri: str) -> Pem:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return Pem(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


# -- the harness: SDS secrets become static secrets of the same names ----------------------


def with_static_secrets(bootstrap: bootstrap_pb2.Bootstrap, me: Pem, bundle: bytes) -> None:
    def local(ctx: tls_pb2.CommonTlsContext) -> None:
        for sds in ctx.tls_certificate_sds_secret_configs:
            sds.ClearField("sds_config")
        ctx.combined_validation_context.validation_context_sds_secret_config.ClearField(
            "sds_config"
        )

    res = bootstrap.static_resources
    for listener in res.listeners:
        for chain in listener.filter_chains:
            if chain.HasField("transport_socket"):
                down = tls_pb2.DownstreamTlsContext()
                chain.transport_socket.typed_config.Unpack(down)
                local(down.common_tls_context)
                chain.transport_socket.typed_config.Pack(down)
    for cluster in res.clusters:
        for match in cluster.transport_socket_matches:
            up = tls_pb2.UpstreamTlsContext()
            match.transport_socket.typed_config.Unpack(up)
            local(up.common_tls_context)
            match.transport_socket.typed_config.Pack(up)
    identity = res.secrets.add(name="identity")
    identity.tls_certificate.certificate_chain.inline_bytes = me.chain
    identity.tls_certificate.private_key.inline_bytes = me.key
    trust = res.secrets.add(name="trust-bundle")
    trust.validation_context.CopyFrom(
        secret_pb2.Secret(
            validation_context={"trusted_ca": {"inline_bytes": bundle}}
        ).validation_context
    )


@dataclass
class Pair:
    web: EnvoyProcess
    reviews: EnvoyProcess
    app: HttpBackend
    #: web's local address for reviews, and reviews' inbound address
    outbound: tuple[str, int]
    inbound: tuple[str, int]


def _mesh(mode: str, app: tuple[str, int], inbound: int, outbound: int) -> ModelSnapshot:
    text = f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{trustDomain: {TD}, mtls: {{mode: {mode}}}}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: reviews}}
spec: {{ports: [{{name: http, port: 9080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: web-1}}
spec:
  service: web
  address: 127.0.0.2
  ports: [{{port: {free_port("127.0.0.2")}, appPort: 1}}]
  dependencies: [{{service: reviews, localAddress: 127.0.0.2, localPort: {outbound}}}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: reviews-1}}
spec:
  service: reviews
  address: 127.0.0.3
  appAddress: {app[0]}
  ports: [{{port: {inbound}, appPort: {app[1]}}}]
"""
    return ModelSnapshot().with_changes(parse_yaml(text, "mtls.yaml"))


@contextlib.asynccontextmanager
async def pair(mode: str, ca: ThrowawayCa, reviews_id: str | None = None) -> AsyncIterator[Pair]:
    """web-1 and reviews-1 sidecars, both TLS-capable, reviews-1 ready and enforced."""
    async with HttpBackend("reviews", host="127.0.0.3") as app:
        inbound, outbound = free_port("127.0.0.3"), free_port("127.0.0.2")
        snap = _mesh(mode, app.address, inbound, outbound)
        ready = frozenset({("default", "reviews-1")})
        tls = TlsState(frozenset({WEB.node_id, REVIEWS.node_id}), ready, ready)
        translator = Translator()
        envoys = []
        for ident, uri in (
            (WEB, WEB_ID),
            (REVIEWS, reviews_id or spiffe_id(TD, "default", "reviews")),
        ):
            res = translator.proxy(snap, ident, tls)
            bootstrap = static_bootstrap(
                listeners=res.listeners.values(),
                clusters=res.clusters.values(),
                endpoints=res.endpoints.values(),
                routes=res.routes.values(),
                node=ident,
                extension_configs=res.extension_configs.values(),
            )
            with_static_secrets(bootstrap, ca.issue(uri), ca.pem)
            envoys.append(EnvoyProcess(bootstrap, name=ident.name))
        async with envoys[0] as web, envoys[1] as reviews:
            yield Pair(web, reviews, app, ("127.0.0.2", outbound), ("127.0.0.3", inbound))


def _client_tls(ca: ThrowawayCa, me: Pem, tmp: Path) -> ssl.SSLContext:
    """A client of the mesh: presents ``me``, trusts ``ca`` (no host name: SPIFFE URIs)."""
    (tmp / "me.pem").write_bytes(me.chain)
    (tmp / "me.key").write_bytes(me.key)
    ctx = ssl.create_default_context(cadata=ca.pem.decode())
    ctx.check_hostname = False
    ctx.load_cert_chain(tmp / "me.pem", tmp / "me.key")
    return ctx


def _xfcc_uris(headers: dict[str, str]) -> list[str]:
    value = headers.get("x-forwarded-client-cert", "")
    return [part.removeprefix("URI=") for part in value.split(";") if part.startswith("URI=")]


@pytest.fixture
def ca() -> Iterator[ThrowawayCa]:
    yield ThrowawayCa("mesh root")


async def test_strict_takes_only_mtls_from_the_mesh_and_tells_the_app_who_called(
    ca: ThrowawayCa, tmp_path: Path
) -> None:
    async with pair("strict", ca) as p:
        out = f"http://{p.outbound[0]}:{p.outbound[1]}"
        async with httpx.AsyncClient(timeout=5) as client:
            # The caller's sidecar sends mTLS; the app sees the caller's verified SPIFFE id,
            # not what the client wrote in the header.
            r = await client.get(
                f"{out}/hello", headers={"x-forwarded-client-cert": "URI=spiffe://evil/x"}
            )
            assert r.status_code == 200, r.text
            assert _xfcc_uris(r.json()["headers"]) == [WEB_ID]
            # A plaintext client straight to the callee's inbound port is refused.
            with pytest.raises(httpx.TransportError):
                await client.get(f"http://{p.inbound[0]}:{p.inbound[1]}/plain")
        stats = await p.reviews.stats(r"ssl\.handshake$")
        assert any(k.startswith("listener.") and v >= 1 for k, v in stats.items()), stats
        caller = await p.web.stats(r"^cluster\.outbound\|default/reviews\|http\.ssl\.handshake$")
        assert sum(caller.values()) >= 1, caller

        inbound = f"https://{p.inbound[0]}:{p.inbound[1]}"
        # A client certificate from another CA is refused.
        other = ThrowawayCa("another root")
        evil = _client_tls(ca, other.issue(WEB_ID), tmp_path)
        async with httpx.AsyncClient(verify=evil, timeout=5) as client:
            # (with TLS 1.3 the server's alert may reach the client during the handshake,
            # wrapped by httpx, or only on the first read, as the raw ssl.SSLError)
            with pytest.raises((httpx.TransportError, ssl.SSLError)):
                await client.get(f"{inbound}/other-ca")
        # A mesh client's forged XFCC is replaced by what its certificate proves.
        good = _client_tls(ca, ca.issue(WEB_ID), tmp_path)
        async with httpx.AsyncClient(verify=good, timeout=5) as client:
            r = await client.get(
                f"{inbound}/forged",
                headers={
                    "x-forwarded-client-cert": "By=x;URI=spiffe://shop.local/ns/default/sa/admin"
                },
            )
            assert r.status_code == 200, r.text
            assert _xfcc_uris(r.json()["headers"]) == [WEB_ID]
        assert p.app.requests == 2  # only the mTLS requests reached the app


async def test_a_callee_with_the_wrong_spiffe_id_is_refused_by_the_caller(ca: ThrowawayCa) -> None:
    wrong = spiffe_id(TD, "default", "ratings")
    async with pair("strict", ca, reviews_id=wrong) as p:
        async with httpx.AsyncClient(timeout=5) as client:
            r = await client.get(f"http://{p.outbound[0]}:{p.outbound[1]}/hello")
        assert r.status_code == 503
        assert p.app.requests == 0


async def test_permissive_takes_plaintext_and_mtls(ca: ThrowawayCa) -> None:
    async with pair("permissive", ca) as p:
        async with httpx.AsyncClient(timeout=5) as client:
            r = await client.get(f"http://{p.outbound[0]}:{p.outbound[1]}/mtls")
            assert r.status_code == 200, r.text
            assert _xfcc_uris(r.json()["headers"]) == [WEB_ID]
            r = await client.get(
                f"http://{p.inbound[0]}:{p.inbound[1]}/plain",
                headers={"x-forwarded-client-cert": f"URI={WEB_ID}"},
            )
            assert r.status_code == 200, r.text
            # plaintext: no verified caller, and a client's own header is stripped
            assert "x-forwarded-client-cert" not in r.json()["headers"]
        caller = await p.web.stats(r"^cluster\.outbound\|default/reviews\|http\.ssl\.handshake$")
        assert sum(caller.values()) >= 1, caller
