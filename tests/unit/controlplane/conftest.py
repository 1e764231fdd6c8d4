"""Fixtures shared by the control plane's tests."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.controlplane import admission
from gossamer.model import ModelSnapshot


@pytest.fixture
def whole_checks(monkeypatch: pytest.MonkeyPatch) -> list[ModelSnapshot]:
    """Every model the whole-mesh reference check runs on, in order (it still runs)."""
    seen: list[ModelSnapshot] = []
    real = admission.check_references

    def check(snap: ModelSnapshot) -> Any:
        seen.append(snap)
        return real(snap)

    monkeypatch.setattr(admission, "check_references", check)
    return seen
