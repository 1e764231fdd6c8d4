"""The vendored Swagger UI and ReDoc files are the ones ``vendor-lock.json`` pins
(``scripts/vendor-docs-assets --check``), and the wheel ships them (package data)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from gossamer.api.docs_pages import REDOC_JS, STATIC, SWAGGER_CSS, SWAGGER_JS

ROOT = Path(__file__).resolve().parents[3]


def test_committed_assets_match_the_lock() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "vendor-docs-assets"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_pages_name_vendored_files() -> None:
    for url in (SWAGGER_JS, SWAGGER_CSS, REDOC_JS):
        assert (STATIC / url.removeprefix("/docs-assets/")).is_file(), url


def test_package_data_includes_the_assets() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["gossamer"]
    assert "api/docs_assets/**/*" in patterns
