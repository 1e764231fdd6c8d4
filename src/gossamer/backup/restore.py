"""``gossamer restore``: an archive into a stopped control plane's data directory and store.

Offline on purpose: the CA must be in ``<data-dir>/ca`` before the control plane starts
(or it generates a new root), and a running plane holds the model, the NGAC graph and the
CA in memory. SQLite's exclusive lock refuses a restore into a store a control plane has
open. Everything is checked before anything is written: the passphrase (by decrypting),
every manifest (the model's validation and references), and that the store and the CA
directory are empty (or ``force``). Then the resources go in as one transaction, then the
CA's files (each written whole, keys 0600).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gossamer.backup.archive import Archive, open_ca
from gossamer.backup.history import user_owned
from gossamer.ca.material import write_file
from gossamer.errors import ConfigError, ValidationError
from gossamer.files import PRIVATE_FILE, private_dir
from gossamer.model import ModelSnapshot, check_references, parse_manifest
from gossamer.store.factory import open_store
from gossamer.types import ResourceKey

#: files of the CA directory readable by others (certificates); every other one is 0600
_PUBLIC_CA_FILES = frozenset(
    {"root-cert.pem", "ca-cert.pem", "cert-chain.pem", "next-root-cert.pem"}
)


@dataclass(frozen=True)
class Restored:
    revision: int
    counts: dict[str, int]
    ca_files: list[str]
    #: what ``force`` replaced: resources deleted, CA files removed
    replaced: int


def _named(keys: list[ResourceKey], limit: int = 5) -> str:
    keys = sorted(keys, key=lambda k: (not user_owned(k, None), k))  # users' first
    counts = Counter(k.kind for k in keys)
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    sample = "; ".join(str(k) for k in keys[:limit])
    more = f"; and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{kinds} ({sample}{more})"


def _check(archive: Archive) -> None:
    resources = [parse_manifest(m, "backup") for m in archive.resources]
    errors = check_references(ModelSnapshot().with_changes(puts=resources))
    if errors:
        raise ValidationError(errors)


async def restore(
    archive: Archive,
    passphrase: str | None,
    data_dir: Path,
    store_location: str | None = None,
    *,
    force: bool = False,
) -> Restored:
    """Restore ``archive`` into ``data_dir`` (and the store it names, or ``store_location``:
    an etcd URL, as ``gossamer control-plane --store``). ``ConfigError`` (nothing changed)
    for a wrong passphrase, a store or CA directory that holds something (unless
    ``force``: then what is there is replaced), or a store another process has open."""
    ca_files: dict[str, bytes] = {}
    if archive.ca is not None:
        if passphrase is None:
            raise ConfigError("the backup holds CA material: give its passphrase")
        ca_files = await asyncio.to_thread(open_ca, archive.ca, passphrase)
    for name in ca_files:
        if "/" in name or name.startswith(".") or not name:
            raise ConfigError(f"the backup's CA file name {name!r} is not a plain file name")
    await asyncio.to_thread(_check, archive)
    private_dir(data_dir, "--data-dir")
    ca_dir = data_dir / "ca"
    present = sorted(p.name for p in ca_dir.iterdir() if p.is_file()) if ca_dir.is_dir() else []
    store = await open_store(store_location or data_dir / "gossamer.db", data_dir=data_dir)
    try:
        stored, _ = await store.list()
        there = [s.key for s in stored]
        if there and not force:
            raise ConfigError(
                f"the store {store_location or data_dir / 'gossamer.db'} is not empty: it holds "
                f"{_named(there)}; restore into a new --data-dir, or pass --force to replace "
                "all of it with the backup"
            )
        if present and ca_files and not force:
            raise ConfigError(
                f"the CA directory {ca_dir} is not empty ({', '.join(present)}); restore into "
                "a new --data-dir, or pass --force to replace the CA with the backup's"
            )
        keep = {parse_manifest(m).key for m in archive.resources}
        gone = [k for k in there if k not in keep]
        revision = await store.apply(archive.resources, gone)
    finally:
        await store.close()
    if ca_files:
        await asyncio.to_thread(_write_ca, ca_dir, ca_files, present)
    counts = Counter(str(m.get("kind")) for m in archive.resources)
    removed = len([p for p in present if p not in ca_files]) if ca_files else 0
    return Restored(revision, dict(sorted(counts.items())), sorted(ca_files), len(gone) + removed)


def _write_ca(directory: Path, files: dict[str, bytes], present: list[str]) -> None:
    private_dir(directory, "CA directory")
    for name, data in files.items():
        write_file(directory / name, data, 0o644 if name in _PUBLIC_CA_FILES else PRIVATE_FILE)
    for name in present:
        if name not in files:
            (directory / name).unlink(missing_ok=True)
