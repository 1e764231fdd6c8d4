"""A STRICT sidecar refuses every client that is not a workload of its mesh (issue 9,
"Modes"): plaintext, a certificate from another CA, and certificates the *mesh's own CA*
signed that are expired or name the wrong SPIFFE id (another trust domain, no URI SAN, a
URI that is not SPIFFE, two URI SANs). A PERMISSIVE sidecar takes plaintext and mTLS.

Real agents, a real control plane and real Envoys on loopback (``mtls_mesh.two_hosts``).
The bad certificates are signed here with the mesh CA's own key, read from the control
plane's data dir (``<data-dir>/ca/root-key.pem``): what an attacker holding a stolen
(expired) certificate, or a CA mis-issuing, would present. A certificate made the same way
for the right id is accepted, so the refusals are about the certificate and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from gossamer.polling import wait_until

from .mtls_mesh import WEB_ID, Mesh, foreign_client, refuses, services, two_hosts, wait_served

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(300)]

NOW = datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class MeshCaKey:
    """The mesh CA's root certificate and key, as the control plane keeps them."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def read(cls, data_dir: Path) -> MeshCaKey:
        cert = x509.load_pem_x509_certificate((data_dir / "ca" / "root-cert.pem").read_bytes())
        key = serialization.load_pem_private_key(
            (data_dir / "ca" / "root-key.pem").read_bytes(), None
        )
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cls(cert, key)

    def sign(
        self,
        sans: Sequence[x509.GeneralName],
        *,
        not_before: datetime.datetime = NOW - datetime.timedelta(minutes=1),
        not_after: datetime.datetime = NOW + datetime.timedelta(hours=1),
    ) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM): a workload certificate as the CA makes them, but
        with ``sans`` and these dates."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=True)
        cert = builder.sign(self.key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem


def uri(text: str) -> x509.GeneralName:
    return x509.UniformResourceIdentifier(text)


def client_context(tmp: Path, name: str, pem: tuple[bytes, bytes]) -> ssl.SSLContext:
    """A TLS client presenting ``pem``; it does not check the server (the test checks that
    the server refuses *us*)."""
    (tmp / f"{name}.pem").write_bytes(pem[0])
    (tmp / f"{name}.key").write_bytes(pem[1])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    ctx.load_cert_chain(tmp / f"{name}.pem", tmp / f"{name}.key")
    return ctx


async def http_over_tls(address: str, ctx: ssl.SSLContext, path: str) -> bytes:
    """Send one HTTP/1.1 GET over TLS to ``address``; whatever came back before the server
    closed (b"" when the handshake or the connection was refused)."""
    host, port = address.rsplit(":", 1)
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
            try:
                writer.write(f"GET {path} HTTP/1.1\r\nHost: reviews\r\n\r\n".encode())
                await writer.drain()
                return await reader.read(65536)
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
    except (OSError, ssl.SSLError, EOFError):
        return b""


async def inbound_stats(mesh: Mesh) -> dict[str, int]:
    """reviews' sidecar's TLS counters for its inbound listener, by last name part, and
    the inbound peer check's (``rbac.allowed``, ``rbac.denied``)."""
    port = mesh.inbound.rsplit(":", 1)[1]
    async with mesh.admin(mesh.reviews, "default/reviews-1") as envoy:
        stats = await envoy.stats(r"^listener\..*\.ssl\.|inbound_peer_id\.rbac\.")
    out: dict[str, int] = {}
    for key, value in stats.items():
        head, _, tail = key.partition(".ssl.")
        if tail and head.endswith(f"_{port}"):
            out[tail] = out.get(tail, 0) + value
        elif "inbound_peer_id.rbac." in key:
            name = "rbac." + key.rsplit(".rbac.", 1)[1]
            out[name] = out.get(name, 0) + value
    return out


def _other_td(path: str) -> str:
    return WEB_ID.replace("spiffe://shop.local/", f"spiffe://evil.local/{path}")


async def test_strict_refuses_every_certificate_but_a_valid_mesh_workload_id(
    tmp_path: Path,
) -> None:
    async with two_hosts(tmp_path, services("strict")) as mesh:
        await wait_served(mesh)
        await wait_until(
            lambda: refuses(f"http://{mesh.inbound}/plain"),
            timeout=90,
            what="reviews' sidecar refusing plaintext (strict enforced)",
        )
        ca = MeshCaKey.read(tmp_path / "cp")
        hour = datetime.timedelta(hours=1)
        # the control sample: made like the bad ones, for web's right id, and accepted
        good = client_context(tmp_path, "good", ca.sign([uri(WEB_ID)]))
        answer = await http_over_tls(mesh.inbound, good, "/good")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        served = len(mesh.reviews_app.seen)
        # (kept from test_mtls_agents: a certificate of another CA with web's id)
        assert await refuses(f"https://{mesh.inbound}/foreign", foreign_client(tmp_path))

        bad = {
            "expired": ca.sign([uri(WEB_ID)], not_before=NOW - 3 * hour, not_after=NOW - hour),
            "not yet valid": ca.sign(
                [uri(WEB_ID)], not_before=NOW + hour, not_after=NOW + 2 * hour
            ),
            "another trust domain": ca.sign([uri(_other_td(""))]),
            "no SAN": ca.sign([]),
            "a DNS SAN only": ca.sign([x509.DNSName("web.default.svc")]),
            "a URI that is not SPIFFE": ca.sign([uri("https://shop.local/ns/default/sa/web")]),
            "the trust domain as a prefix": ca.sign(
                [uri("spiffe://shop.local.evil/ns/default/sa/web")]
            ),
            "an id of the trust domain that is no workload's": ca.sign(
                [uri("spiffe://shop.local/gossamer/control-plane")]
            ),
            "two URI SANs, the foreign one first": ca.sign([uri(_other_td("")), uri(WEB_ID)]),
            "two URI SANs, both of the mesh": ca.sign(
                [uri(WEB_ID), uri(WEB_ID.replace("/sa/web", "/sa/admin"))]
            ),
        }
        before = await inbound_stats(mesh)
        accepted = {}
        for i, (name, pem) in enumerate(bad.items()):
            answer = await http_over_tls(
                mesh.inbound, client_context(tmp_path, "bad", pem), f"/bad-{i}"
            )
            if answer:
                accepted[name] = answer[:120]
        assert accepted == {}, f"strict sidecar answered: {accepted}"
        # no request of theirs reached reviews' app
        assert len(mesh.reviews_app.seen) == served
        after = await inbound_stats(mesh)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        print(f"inbound ssl stats during the bad clients: {delta}")
        # Envoy counted each as refused: the dates fail verification, the names fail the
        # SAN check, and the two-SAN ones pass the handshake (some SAN matches) and are
        # closed by the inbound peer check before any byte reaches the app
        assert delta.get("fail_verify_error", 0) == 2, delta
        assert delta.get("fail_verify_san", 0) == 6, delta
        assert delta.get("handshake", 0) == 2, delta
        assert delta.get("rbac.denied", 0) == 2, delta


async def test_permissive_takes_plaintext_and_mesh_mtls_but_no_foreign_id(
    tmp_path: Path,
) -> None:
    async with two_hosts(tmp_path, services("permissive")) as mesh:
        await wait_served(mesh)
        ca = MeshCaKey.read(tmp_path / "cp")
        # wait until the inbound takes TLS at all (the listener with the TLS chain)
        good = client_context(tmp_path, "good", ca.sign([uri(WEB_ID)]))

        async def takes_mtls() -> bool:
            answer = await http_over_tls(mesh.inbound, good, "/mtls")
            return answer.startswith(b"HTTP/1.1 200")

        await wait_until(takes_mtls, timeout=60, what="reviews' inbound taking mTLS")
        assert not await refuses(f"http://{mesh.inbound}/plain")
        # the TLS chain of a permissive listener checks like strict's
        for name, sans in {
            "another trust domain": [uri(_other_td(""))],
            "two URI SANs": [uri(_other_td("")), uri(WEB_ID)],
        }.items():
            ctx = client_context(tmp_path, "bad", ca.sign(sans))
            answer = await http_over_tls(mesh.inbound, ctx, "/bad")
            assert answer == b"", (name, answer[:120])
