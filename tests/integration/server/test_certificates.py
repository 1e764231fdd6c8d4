"""Workload certificates through the REST API of a real control plane (SQLite store, API on
loopback): a host that registered a Workload gets a chain for that service's SPIFFE id and
nothing else, and no private key (the host's or the CA's) is stored or answered."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.unit.ca.certs import verify_client

from gossamer.ca import keys
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.controlplane import (
    api_verify,
    apply_manifests,
    operator_headers,
    running_control_plane,
)
from gossamer.testing.mesh import service, workload

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def mesh(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gossamer.dev/v1",
        "kind": "Mesh",
        "metadata": {"name": "default"},
        "spec": spec,
    }


@dataclass
class Host:
    """An agent that joined, and everything the API answered it."""

    c: httpx.AsyncClient
    agent_id: str
    credential: str
    #: the operator's token, for operators' reads
    operator: dict[str, str] = field(default_factory=dict)
    answers: list[str] = field(default_factory=list)

    async def register(self, *workloads: dict[str, Any]) -> None:
        put = await self.c.put(
            f"/v1/agents/{self.agent_id}/workloads",
            json={"workloads": list(workloads)},
            headers=self.auth,
        )
        assert put.status_code == 200, put.text

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential}"}

    async def certificate(
        self, svc: str, csr: bytes, *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        answer = await self.c.post(
            f"/v1/agents/{self.agent_id}/certificates",
            json={"service": svc, "csr": csr.decode()},
            headers=self.auth if headers is None else headers,
        )
        self.answers.append(answer.text)
        return answer


@pytest_asyncio.fixture
async def app(tmp_path: Path) -> AsyncIterator[ControlPlaneApp]:
    async with running_control_plane(tmp_path / "cp") as running:
        await apply_manifests(
            running,
            [mesh(trustDomain="shop.local"), service("cart"), service("payments")],
            wait=False,
        )
        yield running


async def _join(app: ControlPlaneApp, c: httpx.AsyncClient, host: str) -> Host:
    operator = operator_headers(app)
    created = await c.post(
        "/v1/tokens",
        json={"ttlSeconds": 600, "scope": {"anyService": True, "anyNamespace": True}},
        headers=operator,
    )
    joined = await c.post("/v1/agents/join", json={"token": created.json()["token"], "host": host})
    assert joined.status_code == 200, joined.text
    return Host(c, joined.json()["agentId"], joined.json()["credential"], operator)


@pytest_asyncio.fixture
async def host(app: ControlPlaneApp) -> AsyncIterator[Host]:
    async with httpx.AsyncClient(base_url=app.api_url, timeout=10, verify=api_verify(app)) as c:
        vm = await _join(app, c, "vm-a")
        await vm.register(workload("cart-1", "cart", "127.0.0.2", 15006, 8080, host="vm-a"))
        yield vm


CART = "spiffe://shop.local/ns/default/sa/cart"


async def test_a_registered_service_gets_a_chain_to_the_bundle(
    app: ControlPlaneApp, host: Host
) -> None:
    key = keys.new_key()
    answer = await host.certificate("default/cart", keys.csr_for(key, CART))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["spiffeId"] == CART
    verified = verify_client(body["certificateChain"].encode(), body["trustBundle"].encode())
    assert verified.subjects == [x509.UniformResourceIdentifier(CART)]
    leaf = x509.load_pem_x509_certificates(body["certificateChain"].encode())[0]
    assert leaf.public_key() == key.public_key()
    assert f"{leaf.serial_number:x}" == body["serial"]
    not_after = datetime.fromisoformat(body["notAfter"])
    assert not_after == leaf.not_valid_after_utc
    lifetime = not_after - datetime.now(UTC)
    assert timedelta(minutes=59) < lifetime <= timedelta(hours=1)  # the default certificateTTL
    assert app.ca is not None
    assert body["trustBundle"].encode() == app.ca.trust_bundle_pem()


async def test_the_id_comes_from_the_service_a_csr_without_a_san_is_fine(host: Host) -> None:
    csr = keys.csr_for(keys.new_key(), CART)
    bare = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))  # no SAN
    plain = bare.sign(keys.new_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    for each in (csr, plain):
        answer = await host.certificate("cart", each)  # no namespace: default
        assert answer.status_code == 200, answer.text
        assert answer.json()["spiffeId"] == CART


async def test_a_service_it_did_not_register_is_forbidden(app: ControlPlaneApp, host: Host) -> None:
    payments = "spiffe://shop.local/ns/default/sa/payments"
    answer = await host.certificate("default/payments", keys.csr_for(keys.new_key(), payments))
    assert answer.status_code == 403, answer.text
    assert answer.json()["code"] == "forbidden"
    assert "registered no Workload of service default/payments" in answer.json()["errors"][0]

    other = await _join(app, host.c, "vm-b")  # another host serving payments
    await other.register(workload("payments-1", "payments", "127.0.0.3", 15006, 8080, host="vm-b"))
    assert (
        await other.certificate("default/payments", keys.csr_for(keys.new_key(), payments))
    ).status_code == 200
    assert (
        await other.certificate("default/cart", keys.csr_for(keys.new_key(), CART))
    ).status_code == 403
    # and naming its own service while asking for another's identity in the CSR
    sneaky = await other.certificate("default/payments", keys.csr_for(keys.new_key(), CART))
    assert sneaky.status_code == 422, sneaky.text
    assert sneaky.json()["errors"][0].startswith("csr: asks for UniformResourceIdentifier:" + CART)


async def test_no_or_wrong_credential_is_401(host: Host) -> None:
    csr = keys.csr_for(keys.new_key(), CART)
    missing = await host.certificate("default/cart", csr, headers={})
    assert missing.status_code == 401
    assert missing.json()["reason"] == "no_credential"
    wrong = await host.certificate("default/cart", csr, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["reason"] == "wrong_credential"


async def test_a_bad_csr_is_refused_naming_the_field(host: Host) -> None:
    answer = await host.certificate("default/cart", b"-----BEGIN CERTIFICATE REQUEST-----\nAA")
    assert answer.status_code == 422
    assert answer.json()["errors"][0].startswith("csr: not a PEM certificate signing request")
    bad_name = await host.certificate("Default/Cart", keys.csr_for(keys.new_key(), CART))
    assert bad_name.status_code == 422
    assert bad_name.json()["errors"][0].startswith("service: 'Default' is not a valid namespace")


async def test_ttl_and_trust_domain_follow_the_mesh(app: ControlPlaneApp, host: Host) -> None:
    await apply_manifests(
        app, [mesh(trustDomain="bank.local", mtls={"certificateTTL": "2m"})], wait=False
    )
    bank = "spiffe://bank.local/ns/default/sa/cart"
    answer = await host.certificate("default/cart", keys.csr_for(keys.new_key(), bank))
    assert answer.status_code == 200, answer.text
    assert answer.json()["spiffeId"] == bank
    lifetime = datetime.fromisoformat(answer.json()["notAfter"]) - datetime.now(UTC)
    assert timedelta(seconds=110) < lifetime <= timedelta(minutes=2)
    status = (await host.c.get("/v1/ca", headers=host.operator)).json()
    assert status["trustDomain"] == "bank.local"


async def test_ca_status_lists_the_root_and_no_key(app: ControlPlaneApp, host: Host) -> None:
    answer = await host.c.get("/v1/ca", headers=host.operator)
    assert answer.status_code == 200
    body = answer.json()
    (root,) = body["roots"]
    assert app.ca is not None
    cert = x509.load_pem_x509_certificate(app.ca.trust_bundle_pem())
    assert root["serial"] == f"{cert.serial_number:x}"
    assert root["subject"] == cert.subject.rfc4514_string()
    assert datetime.fromisoformat(root["notAfter"]) == cert.not_valid_after_utc
    assert root["signing"] is True and body["intermediates"] == [] and body["plugged"] is False
    assert "PRIVATE KEY" not in answer.text


async def test_no_private_key_is_stored_or_answered(
    tmp_path: Path, app: ControlPlaneApp, host: Host
) -> None:
    key = keys.new_key()
    issued = await host.certificate("default/cart", keys.csr_for(key, CART))
    assert issued.status_code == 200
    for path in ("/v1/ca", "/v1/agents", "/v1/resources"):
        host.answers.append((await host.c.get(path, headers=host.operator)).text)
    answers = "".join(host.answers)
    # the database with its write-ahead log and shared memory, whatever is on disk now
    stored = b"".join(p.read_bytes() for p in (tmp_path / "cp").glob("gossamer.db*"))
    assert b"cart-1" in stored, "the scan must see what the store holds"
    leaf_lines = _body_lines(issued.json()["certificateChain"].encode())
    assert leaf_lines[1].decode() in answers, "the scan must see what the API answered"
    ca_key = (tmp_path / "cp" / "ca" / "root-key.pem").read_bytes()
    for secret in (keys.key_pem(key), ca_key):
        scalar = _scalar(secret)
        assert scalar not in stored
        lines = _secret_lines(secret)
        assert lines
        for line in lines:
            assert line not in stored
            assert line.decode() not in answers


def _body_lines(pem: bytes) -> list[bytes]:
    """The PEM's base64 lines (64 characters each; a short last one is left out)."""
    return [line for line in pem.splitlines()[1:-1] if len(line) >= 16]


def _scalar(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.private_numbers().private_value.to_bytes(32, "big")


def _secret_lines(pem: bytes) -> list[bytes]:
    """The PEM's base64 lines that carry a byte of the private scalar. A private key's PEM
    also holds its public key, whose bytes a certificate rightly carries: a line made of
    those alone may well be answered (the CA's own certificate is)."""
    lines = pem.splitlines()[1:-1]
    at = base64.b64decode(b"".join(lines)).find(_scalar(pem))
    assert at >= 0, "the key's DER holds its scalar"
    per_line = 48  # 64 base64 characters
    return [
        line for i, line in enumerate(lines) if i * per_line < at + 32 and at < (i + 1) * per_line
    ]


async def test_a_restart_keeps_the_root_and_the_trust_domain(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as first:
        await apply_manifests(first, [mesh(trustDomain="shop.local")], wait=False)
        assert first.ca is not None
        bundle = first.ca.trust_bundle_pem()
    async with running_control_plane(tmp_path / "cp") as again:
        assert again.ca is not None
        assert again.ca.trust_bundle_pem() == bundle
        assert again.ca.trust_domain == "shop.local"
