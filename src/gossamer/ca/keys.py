"""The host's side of an identity: a private key made here, and a CSR naming what it asks.

Used by the agent and the gateway. The key is generated on the host and never sent
anywhere: only the CSR (its public half, signed with it) goes to the control plane, which
puts the SPIFFE id into the certificate itself.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gossamer.types import parse_spiffe_id

#: the private key type of every host identity (the CA also accepts P-384 and RSA >= 2048)
PrivateKey = ec.EllipticCurvePrivateKey


def new_key() -> PrivateKey:
    """A fresh ECDSA P-256 key (fast to make and to handshake with)."""
    return ec.generate_private_key(ec.SECP256R1())


def csr_for(key: PrivateKey, spiffe_id: str | None) -> bytes:
    """A PEM CSR for ``spiffe_id``, signed with ``key``.

    It asks for exactly that URI SAN and nothing else; its subject is empty (the CA ignores
    subjects anyway). With ``None`` it asks for no SAN (the CA puts the id the server
    derives from the service in): a host does not know the mesh's trust domain, which the
    operator may also change.
    """
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    if spiffe_id is not None:
        parse_spiffe_id(spiffe_id)  # refuse to ask for what the CA would refuse
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
            critical=True,
        )
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM, for Envoy over the local SDS socket only."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
