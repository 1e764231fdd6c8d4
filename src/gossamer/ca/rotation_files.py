"""Root rotation on disk: each phase's files in the CA directory, written so that a control
plane stopped at any point resumes the phase it was in (``resume``).

* ``trusting``: ``root-cert.pem`` holds the old and the new root, ``root-key.pem`` is still
  the old root's key; the new key waits in ``next-root-key.pem`` (0600) and its
  certificate in ``next-root-cert.pem``.
* ``issuing``: ``root-key.pem`` is the new root's key (the old key is gone).
* ``retiring`` and ``done``: ``root-cert.pem`` holds the new root only.
* ``rotation.json`` (0600) records the phase and when it began.

Each move writes ``rotation.json`` first, then the files of the new phase; ``resume``
finishes a move a stop interrupted. Blocking: call from a worker thread.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gossamer.ca.material import (
    ROOT_CERT,
    ROOT_KEY,
    Material,
    key_bytes,
    load_or_generate,
    new_root,
    read_certs,
    write_file,
)
from gossamer.ca.rotation import Phase, RotationState
from gossamer.errors import ConfigError, ConflictError
from gossamer.files import PRIVATE_FILE

NEXT_KEY = "next-root-key.pem"
NEXT_CERT = "next-root-cert.pem"
STATE = "rotation.json"


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def read_state(directory: Path) -> RotationState | None:
    path = directory / STATE
    try:
        data = json.loads(path.read_bytes())
        return RotationState.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"CA file {path}: not a rotation record ({e}): restore it from a backup, or "
            "remove it if no rotation is under way"
        ) from None


def _save(directory: Path, state: RotationState) -> None:
    write_file(directory / STATE, json.dumps(state.to_json()).encode() + b"\n", PRIVATE_FILE)


def prepare(
    directory: Path, material: Material, trust_domain: str, now: datetime
) -> tuple[Material, RotationState]:
    """Phase 1: a new root, trusted beside the old one, issuing nothing yet."""
    if material.plugged:
        raise ConflictError(
            "the CA signs with a plugged intermediate whose root key is offline: rotate its "
            "root by hand (docs/security.md, 'Rotating the root of a plugged CA')"
        )
    old = material.signer
    key, cert = new_root(trust_domain)
    write_file(directory / NEXT_KEY, key_bytes(key), PRIVATE_FILE)
    write_file(directory / NEXT_CERT, _pem([cert]), 0o644)
    state = RotationState(Phase.TRUSTING, fingerprint(old), fingerprint(cert), now, now)
    _save(directory, state)
    write_file(directory / ROOT_CERT, _pem([*material.roots, cert]), 0o644)
    return load_or_generate(directory, trust_domain), state


def move(directory: Path, state: RotationState, trust_domain: str) -> Material:
    """Record ``state`` (the next phase) and lay out its files."""
    _save(directory, state)
    return resume(directory, state, trust_domain)


def resume(directory: Path, state: RotationState | None, trust_domain: str) -> Material:
    """The CA's files made to match ``state`` (a move a stop interrupted is finished, the
    leftovers of an unrecorded start are removed), then loaded."""
    if state is None or state.phase is Phase.DONE:  # (retiring wrote the final files)
        _drop(directory, NEXT_KEY, NEXT_CERT)
        return load_or_generate(directory, trust_domain)
    if state.phase is Phase.TRUSTING:
        roots = read_certs(directory, ROOT_CERT)
        if not any(fingerprint(r) == state.new_root for r in roots):
            nxt = read_certs(directory, NEXT_CERT)
            write_file(directory / ROOT_CERT, _pem([*roots, *nxt]), 0o644)
    elif state.phase is Phase.ISSUING:
        if (directory / NEXT_KEY).exists():
            os.replace(directory / NEXT_KEY, directory / ROOT_KEY)
        _drop(directory, NEXT_CERT)
    else:  # retiring
        _drop(directory, NEXT_KEY, NEXT_CERT)
        roots = read_certs(directory, ROOT_CERT)
        kept = [r for r in roots if fingerprint(r) != state.old_root]
        if len(kept) != len(roots):
            write_file(directory / ROOT_CERT, _pem(kept), 0o644)
    return load_or_generate(directory, trust_domain)


def _drop(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).unlink(missing_ok=True)
