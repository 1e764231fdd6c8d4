"""``server.children``: where a child service listens, its kept token, and the supervision
loop (started when needed, restarted with back-off, stopped when not needed and when
cancelled), with real short-lived processes; and when the decision point is needed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from gossamer.envoy.process import pid_alive
from gossamer.errors import ConfigError
from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.polling import Backoff, wait_until
from gossamer.server.authz_child import AuthzSettings, deciding_end_users, service_address
from gossamer.server.children import (
    TOKEN_ENV,
    ChildService,
    child_address,
    kept_port,
    kept_token,
)
from gossamer.testing.jwt_tokens import TokenIssuer
from gossamer.translate.ext_authz import AuthzService

RISK = "it speaks plaintext"


def _address(
    mode: str, listen: tuple[str, int] | None = None, insecure: bool = False
) -> tuple[str, int] | None:
    return child_address(
        mode,
        listen,
        insecure_listen=insecure,
        option="--x-service",
        listen_option="--x-listen",
        plaintext_risk=RISK,
    )


def test_where_a_child_service_is_reached() -> None:
    assert _address("off") is None
    assert _address("10.0.0.5:8082") == ("10.0.0.5", 8082)
    assert _address("[::1]:8082") == ("::1", 8082)
    assert _address("auto", ("127.0.0.2", 9000)) == ("127.0.0.2", 9000)
    reserved = _address("auto")
    assert reserved is not None and reserved[0] == "127.0.0.1" and reserved[1] > 0
    assert _address("auto", ("10.0.0.5", 9000), insecure=True) == ("10.0.0.5", 9000)


@pytest.mark.parametrize(
    ("mode", "listen", "words"),
    [
        ("somewhere", None, ["--x-service", "'somewhere'", "auto, off or HOST:PORT"]),
        ("host:99999", None, ["--x-service", "HOST:PORT"]),
        ("auto", ("0.0.0.0", 0), ["--x-listen 0.0.0.0", "an address they can reach"]),
        ("auto", ("10.0.0.5", 9000), ["--x-listen 10.0.0.5:9000", RISK, "--insecure-listen"]),
    ],
)
def test_a_bad_address_is_refused_naming_the_option(
    mode: str, listen: tuple[str, int] | None, words: list[str]
) -> None:
    with pytest.raises(ConfigError) as e:
        _address(mode, listen)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_the_decision_points_address_from_its_settings() -> None:
    assert service_address(AuthzSettings("off")) is None
    assert service_address(AuthzSettings("127.0.0.9:8082")) == AuthzService("127.0.0.9", 8082)
    with pytest.raises(ConfigError) as e:
        service_address(AuthzSettings("auto", ("10.1.1.1", 1)))
    assert "--authz-listen 10.1.1.1:1: the decision point" in str(e.value)


@pytest.mark.asyncio
async def test_a_kept_token_is_reused_while_valid_and_kept_0600(tmp_path: Path) -> None:
    path = tmp_path / "x.token"
    made: list[str] = []

    async def create() -> str:
        made.append(f"token-{len(made)}")
        return made[-1]

    assert await kept_token(path, lambda t: True, create) == "token-0"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert await kept_token(path, lambda t: t == "token-0", create) == "token-0"
    assert made == ["token-0"]
    # no longer authenticating (deleted, another store): a new one replaces it
    path.chmod(0o644)
    assert await kept_token(path, lambda t: False, create) == "token-1"
    assert path.read_text().strip() == "token-1"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


class Switch:
    """A need a test flips."""

    def __init__(self) -> None:
        self.on = False
        self._changed = asyncio.Event()

    def set(self, on: bool) -> None:
        self.on = on
        self._changed.set()
        self._changed = asyncio.Event()

    def needed(self) -> bool:
        return self.on

    async def changed(self) -> None:
        await self._changed.wait()


#: a child that writes what it got (argv, token from its environment) and waits; the file
#: appears whole (renamed into place: the test reads it as soon as it exists, and once
#: read it half-written in a CI run)
CHILD = (
    "import json, os, sys, time; "
    "open(sys.argv[1] + '.part', 'w').write(json.dumps([sys.argv, os.environ.get(sys.argv[2])])); "
    "os.replace(sys.argv[1] + '.part', sys.argv[1]); "
    "time.sleep(60)"
)


def _child(tmp_path: Path, need: Switch, tokens: list[str]) -> ChildService:
    seen = tmp_path / "seen.json"

    async def token() -> str:
        tokens.append("secret-token")
        return tokens[-1]

    return ChildService(
        "test child",
        lambda: [sys.executable, "-c", CHILD, str(seen), TOKEN_ENV],
        need,
        token,
        tmp_path / "child.log",
        Backoff(initial=0.05, maximum=0.2),
    )


@pytest.mark.asyncio
async def test_the_child_runs_while_needed_and_comes_back_when_killed(tmp_path: Path) -> None:
    need, tokens = Switch(), []  # type: ignore[var-annotated]
    child = _child(tmp_path, need, tokens)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(child.run())
        await asyncio.sleep(0.1)
        assert child.process is None and tokens == []  # not needed: no process, no token

        need.set(True)
        await wait_until(lambda: (tmp_path / "seen.json").exists(), timeout=10, what="start")
        argv, token = json.loads((tmp_path / "seen.json").read_text())
        assert token == "secret-token" and "secret-token" not in argv  # env only
        assert child.starts == 1 and child.process is not None
        first = child.process.pid

        os.kill(first, signal.SIGKILL)
        await wait_until(lambda: child.starts == 2, timeout=10, what="a restart")
        assert child.process.pid != first and child.process.running
        assert tokens == ["secret-token"]  # made once, reused

        need.set(False)
        second = child.process.pid
        await wait_until(lambda: not pid_alive(second), timeout=10, what="the child stopped")
        await asyncio.sleep(0.1)
        assert child.starts == 2  # not restarted while not needed

        need.set(True)
        await wait_until(lambda: child.starts == 3, timeout=10, what="started again")
        third = child.process.pid
        task.cancel()
    assert not pid_alive(third)  # cancelled (shutdown): stopped


@pytest.mark.asyncio
async def test_a_child_that_keeps_failing_backs_off(tmp_path: Path) -> None:
    need = Switch()
    need.set(True)

    async def token() -> str:
        return "t"

    child = ChildService(
        "failing child",
        lambda: [sys.executable, "-c", "raise SystemExit(3)"],
        need,
        token,
        tmp_path / "child.log",
        Backoff(initial=0.2, maximum=0.8, jitter=0),
    )
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(child.run())
        await wait_until(lambda: child.starts >= 3, timeout=10, what="three starts")
        # 0.2 + 0.4 s between the first three: not a tight loop
        await asyncio.sleep(0.5)
        assert child.starts <= 4
        task.cancel()


def _mesh(mode: str, issuers: bool) -> ModelSnapshot:
    jwt = ""
    if issuers:
        jwks = TokenIssuer("https://idp.example").jwks()
        jwt = f", authentication: {{jwt: [{{issuer: 'https://idp.example', jwks: {{inline: '{jwks}'}}}}]}}"  # noqa: E501
    text = f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{authorization: {{mode: {mode}}}{jwt}}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: reviews}}
spec: {{ports: [{{name: http, port: 9080}}]}}
"""
    return ModelSnapshot().with_changes(parse_yaml(text, "mesh.yaml"))


def test_the_decision_point_is_needed_while_a_service_decides_end_users() -> None:
    assert deciding_end_users(None) is False
    assert deciding_end_users(_mesh("enforce", issuers=False)) is False
    assert deciding_end_users(_mesh("audit", issuers=True)) is False
    assert deciding_end_users(_mesh("enforce", issuers=True)) is True


def test_an_auto_child_keeps_its_port_across_restarts(tmp_path: Path) -> None:
    """Proxies hold a cluster to the child: a control-plane restart must not move it."""
    kept = tmp_path / "authz.address"
    first = kept_port(kept, "127.0.0.1")
    assert kept.read_text() == f"127.0.0.1:{first}\n"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert kept_port(kept, "127.0.0.1") == first
    with socket.socket() as taken:  # something else listens there now: a new port
        taken.bind(("127.0.0.1", first))
        taken.listen()
        second = kept_port(kept, "127.0.0.1")
    assert second != first
    assert kept_port(kept, "127.0.0.1") == second
    other = kept_port(kept, "127.0.0.2")  # --authz-listen moved: the new host's port
    assert kept.read_text() == f"127.0.0.2:{other}\n"
