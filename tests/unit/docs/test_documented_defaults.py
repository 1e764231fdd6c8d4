"""docs/resources.md's tables give the defaults the model has (issue 13 found the retries
default documented as none while Mesh.defaults.retries gave 2): the Mesh.defaults row of
``retries`` and the Retries table's ``attempts``, ``retryOn`` and ``statusCodes``."""

from __future__ import annotations

import re
from pathlib import Path

from gossamer.model.mesh import Defaults
from gossamer.model.route import Retries

PAGE = (Path(__file__).resolve().parents[3] / "docs" / "resources.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text under ``### title`` up to the next heading."""
    match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^#)", PAGE, re.MULTILINE | re.DOTALL)
    assert match is not None, f"resources.md has no '### {title}'"
    return match[1]


def row(table: str, field: str) -> list[str]:
    """The cells of ``field``'s row in a markdown table."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == f"`{field}`":
            return cells
    raise AssertionError(f"no row for {field!r}")


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_mesh_default_retries_documented_as_the_model_has_them() -> None:
    default = Defaults().retries
    cell = row(section("Mesh.defaults"), "retries")[2]
    assert cell.startswith(f"{default.attempts} attempts on"), cell
    assert names(cell) == [*default.retryOn, str(default.statusCodes).replace(" ", ", ")]


def test_retries_table_defaults() -> None:
    table = section("Retries")
    plain = Retries()
    assert names(row(table, "attempts")[2]) == [str(plain.attempts)]
    assert names(row(table, "retryOn")[2]) == [f"[{', '.join(plain.retryOn)}]"]
    assert names(row(table, "statusCodes")[2]) == [str(plain.statusCodes)]
