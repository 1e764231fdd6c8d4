"""Running the README's and the pages' commands in a clone leaves nothing ``git status``
shows (issue 13): every data dir, state dir, token, store and saved file they name is
covered by .gitignore. The paths are read from the pages, so a renamed directory is
checked too."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PAGES = ["README.md", "docs/quickstart.md", "docs/telemetry.md", "docs/security.md"]
#: options whose value is a directory the command creates
DIR_OPTIONS = re.compile(r"--(?:state-dir|data-dir)[ =](\./[\w./-]+)")
#: options and redirects whose value is a file the command creates
FILE_OPTIONS = re.compile(r"(?:--data|--token-file|-keyout|-out|>)[ =]([\w./-]+\.[a-z]+)\b")
#: ```yaml NAME: a file the page asks the reader to save
SAVED = re.compile(r"^```\w+ ([\w./-]+)$", re.MULTILINE)


def created_paths() -> set[str]:
    paths: set[str] = set()
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        paths |= {
            f"{d.removeprefix('./').rstrip('/')}/admin.token" for d in DIR_OPTIONS.findall(text)
        }
        paths |= {f.removeprefix("./") for f in FILE_OPTIONS.findall(text)}
        paths |= set(SAVED.findall(text))
    return {p for p in paths if not p.startswith(("/", "dev/"))}


def test_docs_leave_nothing_untracked() -> None:
    paths = sorted(created_paths())
    assert "telemetry.token" in paths and ".gossamer/admin.token" in paths, paths
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "--verbose", "--non-matching", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    uncovered = [
        line.split("\t")[1] for line in result.stdout.splitlines() if line.startswith("::")
    ]
    assert not uncovered, f"not in .gitignore: {uncovered}"
