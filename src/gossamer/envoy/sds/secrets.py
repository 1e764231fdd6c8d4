"""The secrets an SDS server hands out (the agent's, a gateway runner's), and who gets which.

Secrets belong to an *owner* (for the agent a service, ``NS/NAME``: every workload of a
service on this host shares its key and certificate; for a gateway runner its gateway); a
proxy (node id) is assigned to one owner by the process that runs it. A proxy nobody
assigned gets nothing (its TLS listeners keep warming), whatever it claims in its node
metadata.

Versions name the content: ``identity`` is versioned by the certificate's serial (hex), the
trust bundle by a digest of its PEM, so what Envoy ACKed can be compared with what the CA
issued (``gossamer ca status``, root rotation).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping

from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf import any_pb2

from gossamer.envoy.sds.protocol import SecretResource
from gossamer.translate.names import IDENTITY_SECRET, TRUST_BUNDLE_SECRET

SECRET_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def bundle_version(bundle_pem: bytes) -> str:
    """The version of a trust bundle: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(bundle_pem).hexdigest()[:16]


def _packed(name: str, version: str, secret: secret_pb2.Secret) -> SecretResource:
    data = secret.SerializeToString(deterministic=True)
    return SecretResource(name, version, any_pb2.Any(type_url=SECRET_TYPE_URL, value=data))


def identity_secret(chain_pem: bytes, key_pem: bytes, serial: str) -> SecretResource:
    """``identity``: the workload's certificate chain and private key, inline."""
    return certificate_secret(IDENTITY_SECRET, chain_pem, key_pem, serial)


def certificate_secret(name: str, chain_pem: bytes, key_pem: bytes, version: str) -> SecretResource:
    """A ``tls_certificate`` secret: a certificate chain and its private key, inline."""
    secret = secret_pb2.Secret(name=name)
    secret.tls_certificate.certificate_chain.inline_bytes = chain_pem
    secret.tls_certificate.private_key.inline_bytes = key_pem
    return _packed(name, version, secret)


def trust_bundle_secret(bundle_pem: bytes) -> SecretResource:
    """``trust-bundle``: every CA certificate the mesh currently trusts."""
    secret = secret_pb2.Secret(name=TRUST_BUNDLE_SECRET)
    secret.validation_context.trusted_ca.inline_bytes = bundle_pem
    return _packed(TRUST_BUNDLE_SECRET, bundle_version(bundle_pem), secret)


class SecretCache:
    """Owner -> secrets, node id -> owner; wakes every waiting stream on a change."""

    def __init__(self) -> None:
        self._secrets: dict[str, dict[str, SecretResource]] = {}
        self._owner_of: dict[str, str] = {}
        self._waiters: set[asyncio.Event] = set()

    def assign(self, node_id: str, owner: str) -> None:
        self._owner_of[node_id] = owner
        self._notify()

    def owner_of(self, node_id: str) -> str | None:
        return self._owner_of.get(node_id)

    def nodes_of(self, owner: str) -> list[str]:
        return sorted(n for n, o in self._owner_of.items() if o == owner)

    def put(self, owner: str, *secrets: SecretResource) -> None:
        held = self._secrets.setdefault(owner, {})
        for s in secrets:
            held[s.name] = s
        self._notify()

    def remove(self, owner: str, *names: str) -> None:
        """Stop serving ``names`` to ``owner``'s proxies (a delta stream removes them)."""
        held = self._secrets.get(owner, {})
        for name in names:
            held.pop(name, None)
        self._notify()

    def for_node(self, node_id: str) -> Mapping[str, SecretResource]:
        owner = self._owner_of.get(node_id)
        return {} if owner is None else dict(self._secrets.get(owner, {}))

    def waiter(self) -> asyncio.Event:
        """An event set on every change; ``release`` it when done."""
        event = asyncio.Event()
        self._waiters.add(event)
        return event

    def release(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)

    def _notify(self) -> None:
        for event in self._waiters:
            event.set()
