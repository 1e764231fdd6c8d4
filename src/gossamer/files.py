"""Files only this user may read: the control plane's store and audit trail, the agent's
and the gateway's state. Their modes are set explicitly, so a umask of 022 (the usual
default) leaves no credential, manifest or audit entry readable by other users."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from gossamer.errors import ConfigError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path, what: str) -> Path:
    """Create ``path`` (and its parents) if needed and make it 0700.

    ``what`` names the setting in the error (e.g. ``--data-dir``).
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        os.chmod(path, PRIVATE_DIR)
    except OSError as e:
        raise ConfigError(
            f"{what} {path}: {e.strerror}; choose a directory this user can create and own"
        ) from None
    return path


def private_file(path: Path) -> None:
    """Create ``path`` empty if it is missing; make it 0600 either way (contents kept)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


def make_private(path: Path) -> None:
    """Make an existing file 0600; nothing if it does not exist."""
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, PRIVATE_FILE)
