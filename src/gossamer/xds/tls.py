"""The xDS server's side of mTLS: its certificate and the trust bundle it checks clients
against, swapped while it serves (renewal, a new root) without a restart.

gRPC asks ``_fetch`` at each new TLS handshake (from one of its own threads): it answers
the newest material once, then ``None`` ("no change") until the material changes again.
Streams already open keep the connection they have.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

import grpc


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """What the xDS server presents and trusts (PEM)."""

    key_pem: bytes
    #: the server's certificate, then its intermediates
    chain_pem: bytes
    #: the roots client certificates must chain to
    trust_bundle_pem: bytes
    #: when it was issued, and when it expires
    not_before: datetime
    not_after: datetime
    serial: int
    spiffe_id: str


class ServerCredentials:
    """The current ``ServerCertificate``; ``update`` swaps it for the next handshakes."""

    def __init__(self, initial: ServerCertificate) -> None:
        self._current = initial
        self._served: ServerCertificate | None = initial
        self._lock = threading.Lock()

    @property
    def current(self) -> ServerCertificate:
        return self._current

    def update(self, cert: ServerCertificate) -> None:
        with self._lock:
            self._current = cert

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Server credentials requiring a client certificate from the trust bundle."""
        return grpc.dynamic_ssl_server_credentials(
            _config(self._current), self._fetch, require_client_authentication=True
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            if self._served is self._current:
                return None
            self._served = self._current
            return _config(self._current)


def _config(cert: ServerCertificate) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(cert.key_pem, cert.chain_pem)], root_certificates=cert.trust_bundle_pem
    )
