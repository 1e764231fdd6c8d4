"""The agent's state directory: its credential, stable ports, the Envoys it runs (so a
restarted agent re-adopts them), its status file and one folder per workload.

Every file is JSON, replaced atomically (written beside, then renamed), mode 0600 in a 0700
directory whatever the umask.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gossamer.errors import ConfigError
from gossamer.files import PRIVATE_DIR, PRIVATE_FILE, private_dir

CREDENTIAL = "credential.json"
PORTS = "ports.json"
ENVOYS = "envoys.json"
STATUS = "status.json"
LOCK = "agent.lock"
#: the SDS server's Unix socket (stable: it is in every sidecar's bootstrap)
SDS_SOCKET = "sds.sock"
#: one file per service: its key, certificate chain and trust bundle
IDENTITY_DIR = "identity"


@dataclass(frozen=True)
class Credential:
    """What a host keeps from joining (``credential.json``, 0600). Build API clients and
    pick xDS addresses from it with ``gossamer.agent.connect`` only."""

    server: str
    agent_id: str
    credential: str
    host: str
    #: the control plane's plaintext xDS address for Envoy (HOST:PORT; "" if not served)
    xds: str
    #: its mTLS xDS address (HOST:PORT; "": none advertised, e.g. joined before TLS)
    xds_tls: str = ""
    #: the roots the API (and xDS) must chain to (PEM; "": joined over plain http)
    trust_bundle: str = ""


@dataclass(frozen=True)
class EnvoyRecord:
    """One Envoy the agent started: enough to find it again after the agent restarts."""

    pid: int
    #: the process start time (``/proc/PID/stat`` field 22): a reused pid does not match
    start_time: int
    admin: str
    #: a digest of the bootstrap it runs; a different one means the Envoy must be replaced
    bootstrap: str


def write_json(path: Path, data: Any, *, mode: int = PRIVATE_FILE) -> None:
    """Replace ``path`` atomically with ``data`` as JSON, created with ``mode``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, sort_keys=True)
            out.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}; check its permissions") from None
    try:
        return json.loads(text)
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON; remove it (the agent rewrites it)") from None


class StateDir:
    """Files under one directory (``--state-dir``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None

    def ensure(self) -> None:
        """The state dir, 0700 whatever the umask (it holds the credential)."""
        private_dir(self.path, "--state-dir")

    @property
    def sds_socket(self) -> Path:
        return self.path.absolute() / SDS_SOCKET

    def identity_file(self, service: str) -> Path:
        """Where the key and certificate of ``service`` (``NS/NAME``) are kept (0600)."""
        parent = self.path / IDENTITY_DIR
        parent.mkdir(exist_ok=True, mode=PRIVATE_DIR)
        return parent / f"{quote(service, safe='')}.json"

    def workload_dir(self, key: str) -> Path:
        parent = self.path / "workloads"
        parent.mkdir(exist_ok=True, mode=PRIVATE_DIR)
        path = parent / key.replace("/", "-")
        path.mkdir(exist_ok=True, mode=PRIVATE_DIR)
        return path

    # -- one agent per state dir -------------------------------------------------------

    def lock(self) -> None:
        """Hold the state dir for this process (released when it exits)."""
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"another agent (pid {holder}) runs with --state-dir "
                f"{self.path}; stop it first or use another state dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- credential --------------------------------------------------------------------

    def save_credential(self, cred: Credential) -> None:
        self.ensure()
        write_json(self.path / CREDENTIAL, asdict(cred), mode=0o600)

    def credential(self) -> Credential:
        data = read_json(self.path / CREDENTIAL)
        if data is None:
            raise ConfigError(
                f"no credential in {self.path}; run `gossamer agent join "
                "--server URL --token TOKEN` with this --state-dir first"
            )
        try:
            return Credential(
                str(data["server"]),
                str(data["agent_id"]),
                str(data["credential"]),
                str(data["host"]),
                str(data["xds"]),
                str(data.get("xds_tls") or ""),  # absent in files from before TLS
                str(data.get("trust_bundle") or ""),
            )
        except (KeyError, TypeError):
            raise ConfigError(
                f"{self.path / CREDENTIAL} is damaged; join again with `gossamer agent join`"
            ) from None

    # -- ports and Envoys --------------------------------------------------------------

    def ports(self) -> dict[str, dict[str, int]]:
        data = read_json(self.path / PORTS)
        return data if isinstance(data, dict) else {}

    def save_ports(self, ports: dict[str, dict[str, int]]) -> None:
        write_json(self.path / PORTS, ports)

    def envoys(self) -> dict[str, EnvoyRecord]:
        data = read_json(self.path / ENVOYS)
        out: dict[str, EnvoyRecord] = {}
        if isinstance(data, dict):
            for key, value in data.items():
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    out[key] = EnvoyRecord(
                        int(value["pid"]),
                        int(value["start_time"]),
                        str(value["admin"]),
                        str(value["bootstrap"]),
                    )
        return out

    def save_envoys(self, envoys: dict[str, EnvoyRecord]) -> None:
        write_json(self.path / ENVOYS, {k: asdict(v) for k, v in sorted(envoys.items())})

    # -- status ------------------------------------------------------------------------

    def save_status(self, status: dict[str, Any]) -> None:
        write_json(self.path / STATUS, status)

    def status(self) -> dict[str, Any] | None:
        data = read_json(self.path / STATUS)
        return data if isinstance(data, dict) else None
