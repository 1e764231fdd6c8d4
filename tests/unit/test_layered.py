"""``Layered``: a copy of a shared mapping that records every name written to it, so that
``holds`` and ``differing`` read only those names (a gateway's 10,000 shared clusters are
not walked per gateway) and still say what a walk over the whole copy says."""

from __future__ import annotations

import copy
import pickle
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.layered import Layered, differing, holds

NAMES = [f"n{i}" for i in range(6)]


def base() -> dict[str, object]:
    return {n: object() for n in NAMES[:4]}


def test_every_way_of_changing_it_is_recorded() -> None:
    shared = base()
    layer: Layered[str, object] = Layered(shared)
    assert layer == shared and layer.written == {}
    new = object()
    layer["n0"] = new
    del layer["n1"]
    layer.update({"n4": new}, n5=new)
    layer |= {"n2": new}
    layer.setdefault("n3", new)  # (present: nothing written)
    assert layer.pop("n3") is shared["n3"]
    assert layer.pop("absent", None) is None  # (absent: nothing written)
    assert list(layer.written) == ["n0", "n1", "n4", "n5", "n2", "n3"]
    assert shared.keys() == set(NAMES[:4])  # the base is never changed
    layer.popitem()
    layer.clear()
    assert set(layer.written) == set(NAMES)


def test_a_copy_is_a_plain_dict() -> None:
    layer: Layered[str, int] = Layered({"a": 1})
    layer["b"] = 2
    for copied in (copy.copy(layer), pickle.loads(pickle.dumps(layer))):
        assert type(copied) is dict and copied == {"a": 1, "b": 2}


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["set", "same", "del", "pop", "update", "setdefault"]),
        st.sampled_from(NAMES),
    ),
    max_size=12,
)


def _apply(mapping: dict[str, Any], shared: dict[str, Any], op: str, name: str) -> None:
    if op == "set":
        mapping[name] = object()
    elif op == "same" and name in shared:
        mapping[name] = shared[name]  # (written back as it was: not a difference)
    elif op == "del" and name in mapping:
        del mapping[name]
    elif op == "pop":
        mapping.pop(name, None)
    elif op == "update":
        mapping.update({name: object()})
    elif op == "setdefault":
        mapping.setdefault(name, object())


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_holds_and_differing_read_from_the_record_what_a_walk_finds(
    ops: list[tuple[str, str]],
) -> None:
    shared = base()
    layer: Layered[str, object] = Layered(shared)
    for op, name in ops:
        _apply(layer, shared, op, name)
    plain = dict(layer)
    assert holds(layer, shared) == holds(plain, shared) == (shared.keys() <= plain.keys())
    assert differing(layer, shared) == differing(plain, shared)
    assert differing(plain, shared) == {n: v for n, v in plain.items() if shared.get(n) is not v}


def test_a_layer_over_another_mapping_is_walked() -> None:
    """The record says how the copy differs from its own base only."""
    shared, other = base(), base()
    layer: Layered[str, object] = Layered(shared)
    assert differing(layer, other) == dict(shared)
    assert holds(layer, {"elsewhere": object()}) is False
