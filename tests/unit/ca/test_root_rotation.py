"""Root rotation applied to the CA and its directory: each phase trusts and signs what it
must, survives a restart (files 0600, a move a stop interrupted is finished), announces a
new CA version, and a plugged CA or a second rotation is refused."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import VerificationError
from tests.unit.ca.certs import verify_client
from tests.unit.ca.test_plugged import Pki

from gossamer.ca import keys
from gossamer.ca.authority import CertificateAuthority
from gossamer.ca.material import signed_by
from gossamer.ca.rotation import Phase
from gossamer.errors import ConflictError
from gossamer.types import spiffe_id

CART = spiffe_id("shop.local", "default", "cart")
TTL = timedelta(minutes=5)


def _issue(ca: CertificateAuthority) -> bytes:
    csr = keys.csr_for(keys.new_key(), CART)
    return ca.sign(csr, spiffe_id=CART, ttl=TTL, holder="agent-1").chain_pem


def _roots(ca: CertificateAuthority) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(ca.trust_bundle_pem())


def _reopen(ca: CertificateAuthority) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(ca.directory, "shop.local")


def _chains_to(chain: bytes, root: x509.Certificate) -> bool:
    return signed_by(x509.load_pem_x509_certificate(chain), root)


@pytest.mark.asyncio
async def test_each_phase_trusts_and_signs_what_it_must_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", "shop.local")
    (old,) = _roots(ca)
    heard: list[str] = []
    ca.add_listener(lambda: heard.append(ca.version))
    v0 = ca.version

    state = await ca.start_rotation()
    assert state.phase is Phase.TRUSTING
    old_again, new = _roots(ca)
    assert old_again == old
    chain = _issue(ca)
    assert _chains_to(chain, old), "nothing is issued from the new root yet"
    assert heard == [ca.version] and ca.version != v0
    for name in ("next-root-key.pem", "root-key.pem", "rotation.json"):
        assert stat.S_IMODE((ca.directory / name).stat().st_mode) == 0o600, name
    with pytest.raises(ConflictError, match="already under way"):
        await ca.start_rotation()

    ca = _reopen(ca)  # a restart in phase 1
    assert ca.rotation.state == state
    assert _roots(ca) == [old, new]
    assert _chains_to(_issue(ca), old)

    v1 = ca.version
    issuing = replace(state, phase=Phase.ISSUING, since=datetime.now(UTC))
    await ca.move_rotation(issuing)
    assert ca.version != v1 and _roots(ca) == [old, new]
    chain = _issue(ca)
    assert _chains_to(chain, new)
    verify_client(chain, ca.trust_bundle_pem())
    assert ca.holders.current()[-1].root == state.new_root
    assert not (ca.directory / "next-root-key.pem").exists()

    ca = _reopen(ca)
    assert ca.rotation.state == issuing
    assert _chains_to(_issue(ca), new)

    retiring = replace(issuing, phase=Phase.RETIRING)
    await ca.move_rotation(retiring)
    assert _roots(ca) == [new]
    with pytest.raises(VerificationError):
        verify_client(_issue_from_old(tmp_path, old), ca.trust_bundle_pem())
    await ca.move_rotation(replace(retiring, phase=Phase.DONE))
    ca = _reopen(ca)
    assert _roots(ca) == [new] and not ca.rotation.active
    assert _chains_to(_issue(ca), new)
    assert (await ca.start_rotation()).old_root == state.new_root  # and again


def _issue_from_old(tmp_path: Path, old: x509.Certificate) -> bytes:
    """A chain from a CA whose root is not ``old`` at all (stands in for one from the
    retired root: the new bundle must not accept it)."""
    other = CertificateAuthority.load_or_create(tmp_path / "other", "shop.local")
    return _issue(other)


@pytest.mark.asyncio
async def test_a_move_interrupted_by_a_stop_is_finished_at_the_next_start(
    tmp_path: Path,
) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", "shop.local")
    state = await ca.start_rotation()
    # the record says issuing, but the stop came before the key was swapped
    record = replace(state, phase=Phase.ISSUING).to_json()
    (ca.directory / "rotation.json").write_text(json.dumps(record))
    ca = _reopen(ca)
    assert ca.rotation.state is not None and ca.rotation.state.phase is Phase.ISSUING
    assert _chains_to(_issue(ca), _roots(ca)[1])
    assert not (ca.directory / "next-root-key.pem").exists()


@pytest.mark.asyncio
async def test_an_unrecorded_start_leaves_no_new_root(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", "shop.local")
    await ca.start_rotation()
    # as if stopped after writing the new key, before the record and the bundle
    (ca.directory / "rotation.json").unlink()
    root_pem = ca.directory / "root-cert.pem"
    root_pem.write_bytes(
        root_pem.read_bytes().split(b"-----END CERTIFICATE-----\n")[0]
        + b"-----END CERTIFICATE-----\n"
    )
    ca = _reopen(ca)
    assert len(_roots(ca)) == 1 and ca.rotation.state is None
    assert not (ca.directory / "next-root-key.pem").exists()


@pytest.mark.asyncio
async def test_a_plugged_ca_is_not_rotated_here(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(Pki().plug(tmp_path / "ca"), "shop.local")
    with pytest.raises(ConflictError, match=r"plugged intermediate.*by hand"):
        await ca.start_rotation()
    assert ca.rotation.state is None
    assert not (ca.directory / "rotation.json").exists()
