"""docs/quickstart.md, run: its ``bash`` blocks line by line and its YAML files, against a
real control plane, a real gateway Envoy, a real agent with its sidecar and a real app.

The page shows fixed ports; here each is replaced by a free one (the app's 9000, the
gateway's 8080, and the control plane's API and xDS through ``--api-addr``/``--xds-addr``
and ``GOSSAMER_SERVER``). Lines ending in ``&`` run in the background until the end;
``[export] VAR=$(command)`` keeps the command's output (exported: in the environment of
what runs next); ``curl`` is a request retried until it gets a
200; every other line must exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.testing.leftovers import kill_envoys_under
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration]

DOC = Path(__file__).resolve().parents[3] / "docs" / "quickstart.md"
BIN = Path(sys.executable).parent
_FENCE = re.compile(r"^```(\w+)(?:[ \t]+(\S+))?[ \t]*\n(.*?)^```", re.S | re.M)
_ASSIGN = re.compile(r"^(export )?([A-Z_]+)=\$\((.*)\)$")


@dataclass(frozen=True)
class Block:
    lang: str
    name: str | None
    text: str


def blocks(doc: str) -> list[Block]:
    return [Block(m[1], m[2], m[3]) for m in _FENCE.finditer(doc)]


def commands(text: str) -> list[str]:
    """Shell lines of a block: comments dropped, continuations joined."""
    out: list[str] = []
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


@dataclass
class Shell:
    cwd: Path
    env: dict[str, str]
    ports: dict[str, str]
    xds: str
    api: str
    background: list[tuple[str, asyncio.subprocess.Process]] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    last_body: str = ""

    def substitute(self, text: str) -> str:
        for doc_port, port in self.ports.items():
            text = re.sub(rf"\b{doc_port}\b", port, text)
        for name, value in self.variables.items():
            text = text.replace(f"${name}", value)
        return text

    def argv(self, line: str) -> list[str]:
        argv = shlex.split(self.substitute(line))
        if argv[0] == "python3":
            argv[0] = sys.executable
        if argv[:2] == ["gossamer", "control-plane"]:
            argv += ["--api-addr", self.api, "--xds-addr", self.xds]
        elif argv[:2] == ["gossamer", "gateway"]:
            argv += ["--xds-addr", self.xds]
        elif argv[:3] == ["gossamer", "agent", "join"]:
            argv += ["--xds", self.xds]
        if argv[0] == "gossamer":
            argv[0] = str(BIN / "gossamer")
        return argv

    async def run(self, line: str) -> None:
        if line.startswith("curl "):
            await self.curl(line)
            return
        if line.endswith("&"):
            argv = self.argv(line[:-1])
            name = argv[1] if argv[0].endswith("gossamer") else argv[0]
            log = (self.cwd / f"bg-{len(self.background)}-{Path(name).name}.log").open("wb")
            with log:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.background.append((line, proc))
            return
        target, export = None, False
        if match := _ASSIGN.match(line):
            export, target, line = bool(match[1]), match[2], match[3]
        argv = self.argv(line)
        await self.wait_ready(argv)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, f"{line!r} exited {proc.returncode}:\n{err.decode()}"
        if target is not None:
            self.variables[target] = out.decode().strip()
            if export:
                self.env[target] = self.variables[target]

    async def wait_ready(self, argv: list[str]) -> None:
        """A command after the control plane was started waits until it is up (a user
        reads its start-up line first, which says where its token is)."""
        if not self.background:
            return

        async def ready() -> bool:
            async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
                try:
                    return (await client.get(f"http://{self.api}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

        await wait_until(ready, timeout=60, what="the control plane's /readyz")

    async def curl(self, line: str) -> None:
        argv = shlex.split(self.substitute(line))
        headers = {}
        for i, arg in enumerate(argv):
            if arg == "-H":
                key, _, value = argv[i + 1].partition(":")
                headers[key.strip()] = value.strip()
        url = argv[-1]
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:

            async def ok() -> str | None:
                self.check_background()
                try:
                    r = await client.get(url, headers=headers)
                except httpx.TransportError:
                    return None
                return r.text if r.status_code == 200 else None

            body = await wait_until(ok, timeout=90, what=f"{line!r} answering 200")
        assert isinstance(body, str)
        self.last_body = body

    def check_background(self) -> None:
        for line, proc in self.background:
            if proc.returncode is not None:
                log = next(self.cwd.glob(f"bg-{self.background.index((line, proc))}-*.log"))
                raise AssertionError(
                    f"{line!r} exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
                )

    async def stop(self) -> dict[str, int | None]:
        """SIGTERM every background job, newest first (as `kill %4 %3 %2 %1`)."""
        codes: dict[str, int | None] = {}
        for line, proc in reversed(self.background):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()
            codes[line] = proc.returncode
        return codes


@contextlib.asynccontextmanager
async def shell(tmp_path: Path) -> AsyncIterator[Shell]:
    api = f"127.0.0.1:{free_port()}"
    user = {k: v for k, v in os.environ.items() if k != "GOSSAMER_TOKEN"}  # only the page's
    env = {
        **user,
        "GOSSAMER_SERVER": f"http://{api}",
        "NO_COLOR": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    sh = Shell(
        tmp_path,
        env,
        {"9000": str(free_port()), "8080": str(free_port())},
        xds=f"127.0.0.1:{free_port()}",
        api=api,
    )
    try:
        yield sh
    finally:
        for _, proc in sh.background:  # whatever the test left running
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        # sidecars are detached from their agent by design: none may outlive the test
        kill_envoys_under(tmp_path)


def section(doc: str, title: str) -> str:
    start = doc.index(f"## {title}")
    end = doc.find("\n## ", start + 1)
    return doc[start:] if end < 0 else doc[start:end]


async def run_section(sh: Shell, doc: str, title: str) -> None:
    for block in blocks(section(doc, title)):
        if block.lang == "yaml":
            assert block.name, f"a YAML block in {title!r} names no file"
            (sh.cwd / block.name).write_text(sh.substitute(block.text))
        elif block.lang == "bash":
            for line in commands(block.text):
                await sh.run(line)


@pytest.mark.asyncio
@pytest.mark.slow
async def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    doc = DOC.read_text()
    async with shell(tmp_path) as sh:
        await run_section(sh, doc, "Step 0")
        await run_section(sh, doc, "Step 1")
        assert "Directory listing" in sh.last_body  # the app answered through the gateway

        await run_section(sh, doc, "Step 2")
        token = sh.env["GOSSAMER_TOKEN"]  # as step 0 exported it
        assert token == (tmp_path / "gossamer-data" / "admin.token").read_text().strip()
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            r = await client.get(
                f"http://{sh.api}/v1/resources/Workload/default/shop-1",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
            spec = r.json()["spec"]
            assert spec["sidecar"] is True and spec["address"] == "127.0.0.2"
            gateway = f"http://127.0.0.1:{sh.ports['8080']}/"
            r = await client.get(gateway, headers={"host": "shop.example.com"})
            assert r.status_code == 200 and "Directory listing" in r.text

        codes = await sh.stop()
        gateway_line = next(line for line in codes if line.startswith("gossamer gateway"))
        assert codes[gateway_line] == 0  # it drained and stopped cleanly
        access = (tmp_path / "bg-2-gateway.log").read_text()
        assert '"upstream_cluster":"outbound|default/shop|http"' in access


def test_every_yaml_block_names_its_file_and_is_used() -> None:
    doc = DOC.read_text()
    names = [b.name for b in blocks(doc) if b.lang == "yaml"]
    assert names == ["shop.yaml", "agent-a.yaml"]
    for name in names:
        assert f"-f {name}" in doc
