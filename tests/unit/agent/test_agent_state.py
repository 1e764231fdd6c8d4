import os
import stat
from pathlib import Path

import pytest

from gossamer.agent.state import Credential, EnvoyRecord, StateDir
from gossamer.errors import ConfigError


def test_credential_is_private_and_round_trips(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "agent")
    cred = Credential("http://127.0.0.1:7070", "a-1", "secret", "vm-3", "127.0.0.1:18000")
    state.save_credential(cred)
    path = tmp_path / "agent" / "credential.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "agent").stat().st_mode) == 0o700
    assert StateDir(tmp_path / "agent").credential() == cred


def test_missing_and_damaged_credential(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    with pytest.raises(ConfigError, match="gossamer agent join"):
        state.credential()
    (tmp_path / "credential.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        state.credential()
    (tmp_path / "credential.json").write_text("{}")
    with pytest.raises(ConfigError, match="damaged"):
        state.credential()


def test_envoys_and_ports(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    assert state.envoys() == {} and state.ports() == {}
    records = {"default/web-1": EnvoyRecord(12, 34, "127.0.0.1:9901", "abc")}
    state.save_envoys(records)
    state.save_ports({"default/web-1": {"inbound": 15000, "admin": 9901}})
    assert state.envoys() == records
    assert state.ports()["default/web-1"]["inbound"] == 15000
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_one_agent_per_state_dir(tmp_path: Path) -> None:
    first, second = StateDir(tmp_path), StateDir(tmp_path)
    first.lock()
    try:
        with pytest.raises(ConfigError, match=f"another agent \\(pid {os.getpid()}\\)"):
            second.lock()
    finally:
        first.unlock()
    second.lock()
    second.unlock()


def test_every_state_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Issue 7, R6: with umask 022 nothing in the state dir is readable by other users."""
    old = os.umask(0o022)
    try:
        state = StateDir(tmp_path / "agent")
        state.ensure()
        os.chmod(tmp_path / "agent", 0o755)  # an existing, too open state dir is tightened
        state.save_credential(
            Credential("http://127.0.0.1:7070", "a-1", "secret", "vm-3", "127.0.0.1:18000")
        )
        state.save_ports({"default/web-1": {"inbound": 15000, "admin": 9901}})
        state.save_envoys({"default/web-1": EnvoyRecord(12, 34, "127.0.0.1:9901", "abc")})
        state.save_status({"state": "running"})
        state.lock()
        workload = state.workload_dir("default/web-1")
        state.unlock()
    finally:
        os.umask(old)
    modes = {
        str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode)
        for p in [tmp_path / "agent", *sorted((tmp_path / "agent").rglob("*"))]
    }
    assert modes == {
        "agent": 0o700,
        "agent/agent.lock": 0o600,
        "agent/credential.json": 0o600,
        "agent/envoys.json": 0o600,
        "agent/ports.json": 0o600,
        "agent/status.json": 0o600,
        "agent/workloads": 0o700,
        str(workload.relative_to(tmp_path)): 0o700,
    }
