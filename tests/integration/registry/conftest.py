from __future__ import annotations

from collections.abc import Iterator

import pytest

from gossamer.model import kinds as model_kinds


@pytest.fixture(autouse=True)
def isolated_kinds() -> Iterator[None]:
    """Forget the registry's kinds after each test (other tests list the known kinds)."""
    kinds, internal = dict(model_kinds.KINDS), set(model_kinds.INTERNAL_KINDS)
    yield
    model_kinds.KINDS.clear()
    model_kinds.KINDS.update(kinds)
    model_kinds.INTERNAL_KINDS.clear()
    model_kinds.INTERNAL_KINDS.update(internal)
