"""Where the CLI finds the operator token, and that every request carries it."""

from __future__ import annotations

from pathlib import Path

import httpx

from gossamer.cli.client import ApiClient, operator_token, token_file


def test_the_flag_wins_then_the_environment_then_the_file(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "GOSSAMER_TOKEN": "from-env"}
    path = token_file(env)
    assert path == tmp_path / ".config" / "gossamer" / "token"
    path.parent.mkdir(parents=True)
    path.write_text("from-file\nsecond line ignored\n")
    assert operator_token("from-flag", env) == "from-flag"
    assert operator_token(None, env) == "from-env"
    assert operator_token(None, {"HOME": str(tmp_path)}) == "from-file"
    assert operator_token(None, {"HOME": str(tmp_path), "GOSSAMER_TOKEN": " "}) == "from-file"
    xdg = {"HOME": "/nowhere", "XDG_CONFIG_HOME": str(tmp_path / ".config")}
    assert operator_token(None, xdg) == "from-file"
    assert operator_token(None, {"HOME": str(tmp_path / "empty")}) is None


def test_every_request_sends_the_token_as_bearer() -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"kind": "Service", "items": []})

    with ApiClient("http://cp", token="s3cret", transport=httpx.MockTransport(answer)) as api:
        api.list_resources("services")
        api.validate([])
    assert seen == ["Bearer s3cret", "Bearer s3cret"]
