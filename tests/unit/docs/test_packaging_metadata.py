"""pyproject.toml's licence is the SPDX form setuptools >= 77 wants (issue 13: the table
form made every build warn three times), and the files it names ship."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_is_an_spdx_string_with_its_files() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"], "license-files names the licence text"
    for name in project["license-files"]:
        matched = list(ROOT.glob(name))
        assert matched, f"license-files {name!r} matches no file"
    assert "Apache License" in (ROOT / "LICENSE").read_text(encoding="utf-8")


def test_build_backend_understands_the_spdx_form() -> None:
    [setuptools] = [r for r in PYPROJECT["build-system"]["requires"] if "setuptools" in r]
    minimum = re.fullmatch(r"setuptools>=(\d+)", setuptools.replace(" ", ""))
    assert minimum is not None and int(minimum[1]) >= 77, setuptools
