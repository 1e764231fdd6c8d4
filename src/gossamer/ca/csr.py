"""What the CA accepts from a host: a well-formed CSR, signed by a strong key, asking for
nothing but the identity the server decided on."""

from __future__ import annotations

from typing import NoReturn

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gossamer.errors import FieldError, ValidationError

#: a CSR larger than this is not one of ours
MAX_CSR_BYTES = 16 * 1024
#: key types a workload certificate may carry
EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192

CsrKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_ACCEPTED = (
    f"ECDSA {' or '.join(EC_CURVES.values())}, or RSA of {MIN_RSA_BITS}..{MAX_RSA_BITS} bits"
)


def checked_key(csr_pem: bytes, spiffe_id: str) -> CsrKey:
    """The public key of ``csr_pem`` once the CSR passes every check.

    Refused (``ValidationError`` on field ``csr``): not a PEM CSR, a signature that does not
    verify (the host does not hold the key), a weak or unknown key type, or a subject
    alternative name other than exactly ``spiffe_id``. Its subject and other requested
    extensions are ignored: the CA writes every field of the certificate itself.
    """
    if len(csr_pem) > MAX_CSR_BYTES:
        _refuse(f"{len(csr_pem)} bytes is too large for a CSR (at most {MAX_CSR_BYTES})")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        _refuse("not a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        _refuse(f"a key of type {type(key).__name__.removeprefix('_')}; use {_ACCEPTED}")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in EC_CURVES:
        _refuse(f"an ECDSA key on curve {key.curve.name}; use {_ACCEPTED}")
    if isinstance(key, rsa.RSAPublicKey) and not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
        _refuse(f"an RSA key of {key.key_size} bits; use {_ACCEPTED}")
    if not csr.is_signature_valid:
        _refuse("the CSR's signature does not verify: sign it with the key it carries")
    _check_san(csr, spiffe_id)
    return key


def _check_san(csr: x509.CertificateSigningRequest, spiffe_id: str) -> None:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return  # asks for nothing: the CA puts the SAN in
    except ValueError:
        _refuse("the CSR's extensions do not parse")
    asked = [f"{type(n).__name__}:{n.value}" for n in san]
    if asked != [f"UniformResourceIdentifier:{spiffe_id}"]:
        _refuse(
            f"asks for {', '.join(asked) or 'an empty name'} but this identity is "
            f"{spiffe_id}: request exactly that URI SAN, or none"
        )


def _refuse(message: str) -> NoReturn:
    raise ValidationError([FieldError(message, "csr")])
