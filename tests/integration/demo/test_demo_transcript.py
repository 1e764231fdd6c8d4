"""docs/demo.txt is what ``gossamer demo --duration 10 | cat`` prints: this runs exactly that
command and checks its output has the transcript's sections and columns, that every edge of
the mesh carried traffic without an error, and that the summary is a line of its own.

``GOSSAMER_DEMO_TRANSCRIPT=docs/demo.txt`` also rewrites the transcript (tokens masked)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOC = Path(__file__).resolve().parents[3] / "docs" / "demo.txt"
COMMAND = "gossamer demo --duration 10 | cat"
EDGES = {
    ("default/edge", "default/web"),
    ("default/web", "default/catalog"),
    ("default/web", "default/reviews"),
    ("default/web", "default/ratings"),
}
TOKEN = re.compile(r"gsm1\.[A-Za-z0-9_.-]+")


def sections(text: str) -> list[str]:
    """Each kind of line that is not a table row, in order of first appearance: headings
    without their figures, and the tables' column lines."""
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or (line.startswith(" ") and not stripped.startswith("CALLER")):
            continue
        key = stripped if stripped.startswith("CALLER") else stripped.split(":")[0]
        key = " ".join(re.sub(r"\d+(\.\d+)?", "N", key.split("(")[0]).split())
        if key not in out:
            out.append(key)
    return out


def tables(text: str) -> list[list[list[str]]]:
    """Every edge table's rows (split on whitespace)."""
    found: list[list[list[str]]] = []
    rows: list[list[str]] | None = None
    for line in text.splitlines():
        cells = line.split()
        if cells[:2] == ["CALLER", "CALLEE"]:
            rows = []
            found.append(rows)
        elif rows is not None and len(cells) == 7 and "/" in cells[0]:
            rows.append(cells)
        else:
            rows = None
    return found


def test_the_demo_transcript_matches_docs_demo_txt() -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", COMMAND],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    if target := os.environ.get("GOSSAMER_DEMO_TRANSCRIPT"):
        Path(target).write_text(TOKEN.sub("gsm1.<read-only token>", out), encoding="utf-8")
    # plain lines: no cursor movement or colour, no box drawing
    assert "\x1b" not in out
    assert not re.search("[\u2500-\u257f]", out), out
    expected = sections(DOC.read_text(encoding="utf-8"))
    assert sections(out) == expected, out
    for heading in ("control plane", "web UI", "CLI", "ingress", "topology", "summary"):
        assert heading in expected
    assert re.search(r"^CLI: export GOSSAMER_SERVER=http://127\.0\.0\.1:\d+$", out, re.M), out
    assert re.search(r"^     export GOSSAMER_TOKEN=gsm1\.", out, re.M), out
    assert "  default/edge\n    -> default/web\n      -> default/catalog\n" in out, out
    found = tables(out)
    assert len(found) >= 2, out
    for rows in found[1:]:  # the first may come before every edge has logged
        assert {(r[0], r[1]) for r in rows} == EDGES, out
        for r in rows:
            assert float(r[2]) > 0 and r[3] == "0", r
    lines = out.splitlines()
    assert lines[-1].startswith("summary: ") and lines[-2] == "", lines[-3:]
    served = re.match(r"summary: (\d+) of (\d+) requests succeeded", lines[-1])
    assert served and served.group(1) == served.group(2) and int(served.group(1)) > 0
    split = re.search(r"reviews-1 \(v1\) ([\d.]+)%, reviews-2 \(v2\) ([\d.]+)%", lines[-1])
    assert split and 60 < float(split.group(1)) < 95, lines[-1]  # the route's 80/20
