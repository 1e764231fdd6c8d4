"""Ports handed out on this host lately, by any process of this user.

A port that was free when picked is bound some time later (an Envoy's admin port, written
into its bootstrap, binds when that Envoy starts; a server restarted on its port leaves it
free meanwhile). Checking that it is free says nothing of another process that picked it
meanwhile: two agents on one host, or the processes of a test run. A claim is a file per
port in a private directory, its time the claim's; it lapses after ``ttl`` seconds (the
port was bound by then, or given up). Claims are made under a lock on the directory
(held for a stat and a touch), so two processes never both claim one port.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

#: how long a claim keeps a port from other processes (s): from a pick to its bind is
#: seconds; a server restarted on its port is back within a minute or two
CLAIM_TTL = 600.0


def claims_directory() -> Path:
    """Where this user's claims are: ``$XDG_RUNTIME_DIR/gossamer-ports`` (per user, on
    tmpfs), else ``gossamer-ports-<uid>`` in the temporary directory."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "gossamer-ports"
    return Path(tempfile.gettempdir()) / f"gossamer-ports-{os.getuid()}"


class PortClaims:
    """Claims of ports, shared by every process using the same ``directory``."""

    def __init__(self, directory: Path, ttl: float = CLAIM_TTL) -> None:
        self.directory = directory
        self.ttl = ttl

    @classmethod
    def private(cls, directory: Path, ttl: float = CLAIM_TTL) -> PortClaims | None:
        """Claims in ``directory``, made 0700 if absent; None if it cannot be made, or is
        not this user's alone (another user could then claim every port, or read ours)."""
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            found = directory.lstat()
        except OSError:  # (a file there, or no room, or no right to make it)
            return None
        if (
            not stat.S_ISDIR(found.st_mode)
            or found.st_uid != os.getuid()
            or found.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
        ):
            return None
        return cls(directory, ttl)

    def claim(self, port: int) -> bool:
        """Claim ``port`` for this process: False if another claimed it within ``ttl``.
        (Under a lock on the directory, so two processes never both claim one port.)"""
        path = self.directory / str(port)
        try:
            with self._locked():
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - path.stat().st_mtime < self.ttl:
                        return False
                path.touch(mode=0o600)  # (a lapsed claim's file: its time is now)
                return True
        except OSError:
            return True  # claims unusable now (full, removed): the bind check stands

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.directory / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # (releases the lock)
