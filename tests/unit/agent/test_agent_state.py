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
