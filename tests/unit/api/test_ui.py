"""The web UI's static files (api/ui.py): served without a token with headers that let the
page load only its own files and never be framed; every file the page names is in the
package and the vendored libraries are the ones ``src/gossamer/ui/vendor-lock.json`` pins
(``scripts/vendor-ui --check``); the token travels in the fragment only."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gossamer.api.ui import CSP, STATIC, install_ui, ui_url

ROOT = Path(__file__).resolve().parents[3]


def client() -> httpx.AsyncClient:
    app = FastAPI()
    install_ui(app)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


@pytest.mark.asyncio
async def test_the_page_and_its_files_are_served_with_secure_headers() -> None:
    async with client() as c:
        page = await c.get("/ui/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert 'src="js/main.js"' in page.text
        for response in (page, await c.get("/ui/js/main.js"), await c.get("/ui/nothing")):
            assert response.headers["content-security-policy"] == CSP
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in CSP and "script-src 'self';" in CSP
        assert "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
        redirect = await c.get("/ui")
        assert redirect.status_code == 308 and redirect.headers["location"] == "/ui/"


def test_the_page_names_only_its_own_files() -> None:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    named = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert named, "no file named"
    for ref in named:
        assert "//" not in ref and not ref.startswith("/"), ref  # relative: same origin
        assert (STATIC / ref).is_file(), ref
    assert "<script>" not in html and "style=" not in html  # nothing inline (CSP)
    for module in (STATIC / "js").glob("*.js"):
        text = module.read_text(encoding="utf-8")
        assert not re.search(r"https?://", text), f"{module.name} names another origin"
        for imported in re.findall(r'from "(\./[^"]+)"', text):
            assert (module.parent / imported).is_file(), f"{module.name}: {imported}"


def test_vendored_files_match_the_lock() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "vendor-ui"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_package_data_includes_the_ui() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["gossamer"]
    assert "ui/static/**/*" in patterns


def test_the_token_goes_in_the_fragment() -> None:
    url = ui_url("https://127.0.0.1:7070", "gsm1.abc.d/e+f")
    assert url == "https://127.0.0.1:7070/ui/#token=gsm1.abc.d%2Fe%2Bf"
    assert ui_url("https://127.0.0.1:7070/") == "https://127.0.0.1:7070/ui/"
