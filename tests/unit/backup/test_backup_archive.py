"""The backup archive: its format, and the CA material sealed with a passphrase."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gossamer.backup.archive import (
    FORMAT,
    VERSION,
    build,
    open_ca,
    parse,
    read_ca_files,
    seal_ca,
)
from gossamer.ca.material import load_or_generate
from gossamer.errors import ConfigError

PASS = "correct horse battery"


def _ca(tmp_path: Path) -> dict[str, bytes]:
    load_or_generate(tmp_path / "ca", "gossamer.local")
    return read_ca_files(tmp_path / "ca")


def test_the_ca_round_trips_and_its_key_is_never_in_the_clear(tmp_path: Path) -> None:
    files = _ca(tmp_path)
    assert set(files) == {"root-cert.pem", "root-key.pem"}
    sealed = seal_ca(files, PASS)
    text = json.dumps(build([], revision=3, backend="memory", version="0", ca=sealed))
    assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text
    key_body = files["root-key.pem"].split(b"\n")[1].decode()
    assert key_body not in text  # not even a line of the PEM
    assert len(sealed["roots"]) == 1 and len(sealed["roots"][0]) == 64
    assert open_ca(parse(text.encode()).ca or {}, PASS) == files


def test_a_wrong_passphrase_is_refused_by_name(tmp_path: Path) -> None:
    sealed = seal_ca(_ca(tmp_path), PASS)
    with pytest.raises(ConfigError, match="wrong passphrase"):
        open_ca(sealed, PASS + "!")


def test_a_tampered_ciphertext_is_refused(tmp_path: Path) -> None:
    sealed = seal_ca(_ca(tmp_path), PASS)
    data = bytearray(sealed["ciphertext"].encode())
    data[10] = ord("A") if data[10] != ord("A") else ord("B")
    with pytest.raises(ConfigError, match="wrong passphrase"):
        open_ca({**sealed, "ciphertext": data.decode()}, PASS)


def test_each_seal_has_its_own_salt_and_nonce(tmp_path: Path) -> None:
    files = _ca(tmp_path)
    one, two = seal_ca(files, PASS), seal_ca(files, PASS)
    assert one["kdf"]["salt"] != two["kdf"]["salt"] and one["nonce"] != two["nonce"]
    assert one["kdf"] == {**one["kdf"], "name": "scrypt", "n": 2**15, "r": 8, "p": 1}


def test_a_short_passphrase_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 8"):
        seal_ca({}, "short")


def test_the_document_names_its_format_counts_and_revision() -> None:
    resources = [
        {"apiVersion": "gossamer.dev/v1", "kind": "Route", "metadata": {"name": "a"}},
        {"apiVersion": "gossamer.dev/v1", "kind": "Route", "metadata": {"name": "b"}},
    ]
    doc = build(resources, revision=7, backend="sqlite", version="1.2", ca=None)
    assert doc["format"] == FORMAT and doc["version"] == VERSION
    archive = parse(json.dumps(doc).encode())
    assert archive.revision == 7 and archive.backend == "sqlite" and archive.ca is None
    assert archive.resources == resources and archive.counts == {"Route": 2}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not JSON"),
        (b'{"format": "tar"}', "format is not"),
        (json.dumps({"format": FORMAT, "version": 99}).encode(), "format version 99"),
        (
            json.dumps({"format": FORMAT, "version": 1, "resources": "x"}).encode(),
            "resources is not a list",
        ),
    ],
)
def test_a_file_that_is_not_a_backup_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(data)
