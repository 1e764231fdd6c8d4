"""README.md's "Using it" and docs/quickstart.md, run as a reader pastes them: every ``bash``
block, verbatim and in order, in one fresh ``bash`` per page (``pages``), against a real
control plane, gateway Envoy, agent with sidecars and apps on the page's own ports. A
command that fails fails the test, naming it; nothing is injected, retried or waited for
that the page does not show. Reference blocks (``sh``, ``console``: real-host values) are
not run; their ``gossamer`` commands and options must parse.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from tests.integration.docs.pages import REPO, blocks, clone, commands, running
from typer.testing import CliRunner

from gossamer.cli.main import app as gossamer_app
from gossamer.polling import wait_until

pytestmark = [pytest.mark.integration]

QUICKSTART = REPO / "docs" / "quickstart.md"
README = REPO / "README.md"

#: sequential GETs through the gateway inside the page's namespace, until ``stop`` exists
#: (at most 120 s): every answer but a 200, and every transport error, is a failure
LOAD = """
import http.client, json, os, sys, time, urllib.request, urllib.error
url, stop = sys.argv[1], sys.argv[2]
ok, failed, deadline = 0, [], time.monotonic() + 120
while not os.path.exists(stop) and time.monotonic() < deadline and ok + len(failed) < 20000:
    req = urllib.request.Request(url, headers={"Host": "shop.example.com"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            ok += 1
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:  # (a cut body too)
        failed.append([time.time(), f"{repr(e)[:160]} after {ok} answered 200"])
print(json.dumps({"ok": ok, "failed": failed}))
"""


def bash_commands(doc: str, start: str | None = None) -> list[str]:
    text = doc if start is None else section(doc, start)
    return [c for b in blocks(text) if b.lang == "bash" for c in commands(b.text)]


def section(doc: str, title: str) -> str:
    start = doc.index(f"## {title}")
    end = doc.find("\n## ", start + 1)
    return doc[start:] if end < 0 else doc[start:end]


def save_yaml_files(doc: str, cwd: Path) -> None:
    """What the page tells the reader to save (``yaml NAME`` blocks)."""
    for block in blocks(doc):
        if block.lang == "yaml":
            assert block.name, "a YAML block names no file"
            (cwd / block.name).write_text(block.text)


@pytest.mark.asyncio
@pytest.mark.slow
async def test_quickstart_runs_as_pasted(tmp_path: Path) -> None:
    doc = QUICKSTART.read_text()
    cwd = clone(tmp_path / "clone")
    save_yaml_files(doc, cwd)
    cmds = bash_commands(doc)
    async with running(cwd, cmds) as page:
        # step 3 runs under requests through the gateway: not one may fail
        started = page.index_of("gossamer agent run")
        step2 = started + cmds[started:].index(
            "curl -sf -H 'Host: shop.example.com' http://127.0.0.1:8080/"
        )
        step3_done = page.index_of("! curl") + 1
        await wait_until(
            lambda: page.reached(step2) or page.failure() or page.proc.returncode is not None,
            timeout=240, what="step 2 of the page",
        )  # fmt: skip
        assert page.failure() is None, page.failure()
        stop = tmp_path / "stop-load"
        load = await asyncio.create_subprocess_exec(
            *page.in_namespace(sys.executable, "-c", LOAD, "http://127.0.0.1:8080/", str(stop)),
            stdout=subprocess.PIPE,
        )
        await wait_until(
            lambda: page.reached(step3_done) or page.proc.returncode is not None,
            timeout=120, what="step 3 of the page",
        )  # fmt: skip
        stop.touch()
        out, _ = await load.communicate()
        await page.finish()
    sent = json.loads(out)
    # (a request in flight when the page's clean-up stops everything does not count)
    end = page.finished_at(step3_done)
    failed = [what for at, what in sent["failed"] if at <= end]
    print(f"step 3 under load: {sent['ok']} answered 200, {len(failed)} failed")
    assert failed == [] and sent["ok"] > 0, failed[:5]
    log = page.output.read_text(errors="replace")
    assert log.count("Directory listing") >= 3  # steps 1, 2 and 3: the app through the gateway
    assert "ready: ACKed by gateway~default~edge" in log  # the gateway's wait
    # the agent's wait: its sidecar and the gateway that routes to it
    assert "ready: ACKed by gateway~default~edge, sidecar~default~shop-1" in log
    assert '"upstream_cluster":"outbound|default/shop|http"' in log  # the gateway's access log
    assert not (cwd / "gossamer-data").exists()  # the clean-up ran


@pytest.mark.asyncio
@pytest.mark.slow
async def test_readme_using_it_runs_as_pasted(tmp_path: Path) -> None:
    doc = README.read_text()
    cwd = clone(tmp_path / "clone")
    async with running(cwd, bash_commands(doc, "Using it")) as page:
        await page.finish()
    log = page.output.read_text(errors="replace")
    assert "Directory listing" in log  # client -> gateway -> web's sidecar -> the web app
    assert "ready: ACKed by sidecar~default~web-1" in log  # the agent's wait
    assert "ready: ACKed by gateway~default~edge" in log  # the gateway's


def test_yaml_blocks_name_their_files_and_are_used() -> None:
    doc = QUICKSTART.read_text()
    names = [b.name for b in blocks(doc) if b.lang == "yaml"]
    assert names == ["shop.yaml", "agent-a.yaml", "mesh.yaml"]
    for name in names:
        assert f"-f {name}" in doc


def reference_commands() -> list[str]:
    """The ``gossamer`` commands of every reference block (``sh``/``console``) of the
    README and docs/*.md, but the README's opening install block."""
    found = []
    for path in [README, *sorted((REPO / "docs").glob("*.md"))]:
        for block in blocks(path.read_text()):
            if block.lang not in ("sh", "console"):
                continue
            for cmd in commands(block.text):
                line = cmd.replace("\\\n", " ").split(" #", 1)[0].strip()
                line = re.sub(r"^(\.venv/bin/|\$ )", "", line)
                if line.startswith("gossamer "):
                    found.append(line)
    return found


@pytest.mark.parametrize("line", reference_commands())
def test_reference_commands_parse(line: str) -> None:
    """Each documented ``gossamer`` command names a real command and options it takes:
    run with ``--help`` appended, it must not fail on a usage error (exit 2). (In process,
    through the same Typer app the ``gossamer`` script runs: a subprocess each cost 2-4 s
    of the suite; the pasted pages above run the installed script itself.)"""
    argv = shlex.split(re.sub(r"\$\(.*?\)|\$\w+", "X", line), comments=True)
    argv = [a for a in argv if a not in ("&", "|")]
    # (--help: nothing runs, no server needed)
    result = CliRunner().invoke(gossamer_app, [*argv[1:], "--help"], prog_name="gossamer")
    assert result.exit_code == 0, f"{line!r}: {result.output[-800:]}"


def test_only_the_run_pages_have_bash_blocks() -> None:
    """A ``bash`` block is a promise that it runs as pasted (a test runs it); every other
    page's shell blocks show real-host values and are ``sh`` or ``console``."""
    runnable = {README, QUICKSTART}
    for path in sorted((REPO / "docs").glob("*.md")):
        langs = {b.lang for b in blocks(path.read_text())}
        if path not in runnable:
            assert not langs & {"bash", "shell", "zsh"}, f"{path.name}: mark it sh or console"
    assert "bash" in {b.lang for b in blocks(section(README.read_text(), "Using it"))}
