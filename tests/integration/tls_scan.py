"""sslyze (its Python API) against a TLS port on loopback: which protocol versions and
cipher suites a server accepts. Blocking (sslyze runs its own threads): call it in a thread."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sslyze import (
    ClientAuthenticationCredentials,
    ScanCommand,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)

#: TLS 1.2 suites we accept: ECDHE key exchange (forward secrecy), AEAD ciphers only
STRONG_TLS12 = re.compile(
    r"TLS_ECDHE_(ECDSA|RSA)_WITH_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)"
)
#: TLS 1.3 has only AEAD suites (BoringSSL offers these three)
TLS13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}

_VERSIONS = {
    "SSL 2.0": ScanCommand.SSL_2_0_CIPHER_SUITES,
    "SSL 3.0": ScanCommand.SSL_3_0_CIPHER_SUITES,
    "TLS 1.0": ScanCommand.TLS_1_0_CIPHER_SUITES,
    "TLS 1.1": ScanCommand.TLS_1_1_CIPHER_SUITES,
    "TLS 1.2": ScanCommand.TLS_1_2_CIPHER_SUITES,
    "TLS 1.3": ScanCommand.TLS_1_3_CIPHER_SUITES,
}
_ATTRIBUTE = {
    "SSL 2.0": "ssl_2_0_cipher_suites",
    "SSL 3.0": "ssl_3_0_cipher_suites",
    "TLS 1.0": "tls_1_0_cipher_suites",
    "TLS 1.1": "tls_1_1_cipher_suites",
    "TLS 1.2": "tls_1_2_cipher_suites",
    "TLS 1.3": "tls_1_3_cipher_suites",
}


@dataclass(frozen=True)
class TlsScan:
    #: protocol version -> the cipher suites (IANA names) the server accepted
    accepted: dict[str, list[str]]

    def versions(self) -> list[str]:
        return [v for v, suites in self.accepted.items() if suites]

    def weak_suites(self) -> list[str]:
        """Accepted suites that are neither strong TLS 1.2 suites nor TLS 1.3 ones."""
        return [
            s
            for version, suites in self.accepted.items()
            for s in suites
            if not (
                (version == "TLS 1.2" and STRONG_TLS12.fullmatch(s))
                or (version == "TLS 1.3" and s in TLS13)
            )
        ]


def scan(
    address: tuple[str, int],
    *,
    sni: str,
    client_certificate: tuple[Path, Path] | None = None,
) -> TlsScan:
    """Every SSL/TLS version's cipher suites at ``address``, as a client sending ``sni``
    (and presenting ``client_certificate``: (chain PEM, key PEM) files)."""
    credentials = (
        None
        if client_certificate is None
        else ClientAuthenticationCredentials(
            certificate_chain_path=client_certificate[0], key_path=client_certificate[1]
        )
    )
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(sni, address[1], ip_address=address[0]),
        network_configuration=ServerNetworkConfiguration(
            tls_server_name_indication=sni, tls_client_auth_credentials=credentials
        ),
        scan_commands=set(_VERSIONS.values()),
    )
    scanner = Scanner(per_server_concurrent_connections_limit=4)
    scanner.queue_scans([request])
    [result] = list(scanner.get_results())
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    assert result.scan_result is not None
    accepted: dict[str, list[str]] = {}
    for version, attribute in _ATTRIBUTE.items():
        attempt = getattr(result.scan_result, attribute)
        assert attempt.result is not None, (
            f"{version}: {attempt.error_reason} {attempt.error_trace}"
        )
        accepted[version] = sorted(
            s.cipher_suite.name for s in attempt.result.accepted_cipher_suites
        )
    return TlsScan(accepted)
