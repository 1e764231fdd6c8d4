"""The gateway's kept credential (``gateway.host``): which gateway a state dir is for, the
host name it joins as, and ``--token`` without ``--state-dir``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gossamer.agent.state import Credential, StateDir
from gossamer.cli.main import app
from gossamer.errors import ConfigError
from gossamer.gateway.host import GATEWAY_FILE, default_host, kept


def _joined(path: Path, gateway: str | None) -> StateDir:
    state = StateDir(path)
    state.ensure()
    if gateway is not None:
        (path / GATEWAY_FILE).write_text(json.dumps({"gateway": gateway}))
    state.save_credential(
        Credential("https://127.0.0.1:7070", "agent-1", "secret", "gw-edge-vm", "127.0.0.1:18000")
    )
    return state


def test_a_state_dir_without_a_credential_holds_none(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "gw")
    state.ensure()
    assert kept(state, "default/edge") is None


def test_the_kept_credential_is_this_gateways_only(tmp_path: Path) -> None:
    state = _joined(tmp_path / "gw", "default/edge")
    found = kept(state, "default/edge")
    assert found is not None and found.credential.agent_id == "agent-1"
    assert found.service == "default/edge"
    with pytest.raises(ConfigError, match="holds the credential of gateway default/edge, not"):
        kept(state, "default/admin")
    agent = _joined(tmp_path / "agent", None)
    with pytest.raises(ConfigError, match="an agent"):
        kept(agent, "default/edge")


def test_the_default_host_names_the_gateway_and_the_machine() -> None:
    assert default_host("default", "edge").startswith("gw-edge-")
    assert default_host("shop", "edge").startswith("gw-shop-edge-")
    assert len(default_host("default", "e" * 63)) <= 63


def test_token_needs_a_state_dir() -> None:
    result = CliRunner().invoke(app, ["gateway", "--name", "edge", "--token", "t"])
    assert result.exit_code == 1, result.output
    assert "--token needs --state-dir" in result.output
