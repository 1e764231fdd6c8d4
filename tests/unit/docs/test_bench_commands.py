"""Every benchmark command docs/benchmarks.md shows parses (issue 13: it kept a ``--fix``
flag ``bench/xds_convergence.py`` no longer has). Each ``.venv/bin/python bench/X.py ARGS``
of the page (code blocks and inline code, comments dropped) is run up to its argument
parsing, then stopped: an unknown flag or a bad value fails, nothing is measured."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PAGE = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
COMMAND = re.compile(r"\.venv/bin/python (bench/[\w]+\.py)([^`\n#]*)")

#: runs each script as __main__ with ArgumentParser.parse_args stopping right after parsing
PARSE_ONLY = r"""
import argparse, json, runpy, sys
commands = json.loads(sys.argv[1])
original = argparse.ArgumentParser.parse_args

class Parsed(Exception):
    pass

def parse_then_stop(self, args=None, namespace=None):
    original(self, args, namespace)
    raise Parsed

argparse.ArgumentParser.parse_args = parse_then_stop
results = []
for script, args in commands:
    sys.argv = [script, *args]
    sys.path.insert(0, script.rsplit("/", 1)[0])
    try:
        runpy.run_path(script, run_name="__main__")
        results.append("ran without parsing arguments")
    except Parsed:
        results.append("ok")
    except SystemExit as exit:
        results.append(f"exit {exit.code}")
    finally:
        sys.path.pop(0)
print(json.dumps(results))
"""


def documented_commands() -> list[tuple[str, list[str]]]:
    """Each command's script and words; ``[--flag value]`` (optional, usage style) is
    checked as if given."""
    found = {(m[1], re.sub(r"[\[\]]", "", m[2]).strip()) for m in COMMAND.finditer(PAGE)}
    return sorted((script, shlex.split(args)) for script, args in found)


def test_every_documented_bench_command_parses() -> None:
    commands = documented_commands()
    assert len(commands) > 10, commands
    assert ("bench/xds_convergence.py", []) in commands
    result = subprocess.run(
        [sys.executable, "-c", PARSE_ONLY, json.dumps(commands)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    failed = {
        f"{script} {' '.join(args)}": outcome
        for (script, args), outcome in zip(commands, outcomes, strict=True)
        if outcome != "ok"
    }
    assert not failed, f"{failed}\n{result.stderr[-2000:]}"
