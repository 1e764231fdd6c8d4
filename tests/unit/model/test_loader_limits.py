"""The loader refuses hostile YAML quickly and clearly: alias bombs, deep nesting, text
that is not Unicode (issue 7 R2, R3, R8)."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from gossamer.errors import ValidationError
from gossamer.model import parse_yaml

SERVICE = """\
apiVersion: gossamer.dev/v1
kind: Service
metadata:
  name: cart
  annotations: {note: %s}
spec:
  ports: [{name: http, port: 80}]
"""


def errors_of(text: str, **limits: int) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_yaml(text, "in.yaml", **limits)
    return [str(e) for e in info.value.errors]


def alias_bomb(levels: int = 9) -> str:
    """The 'billion laughs': each level is ten aliases of the one before (10**levels)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    body = "\n".join("    " + line for line in lines)
    return SERVICE.replace("  annotations: {note: %s}\n", f"  annotations:\n{body}\n")


def test_an_alias_bomb_fails_fast_with_little_memory() -> None:
    text = alias_bomb()
    assert len(text) < 2000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        errors = errors_of(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 20_000_000, f"{peak} bytes at the peak"
    assert len(errors) == 1
    assert errors[0].startswith("in.yaml: ")
    assert "more than 1000000 YAML nodes" in errors[0]
    assert "an alias counts as every node it repeats" in errors[0]


def test_the_node_limit_counts_what_aliases_expand_to_and_can_be_raised() -> None:
    text = alias_bomb(levels=3)  # 1 + 10 + 100 + 1000 lists... about 1,100 nodes with names
    assert "more than 1000 YAML nodes" in errors_of(text, max_nodes=1000)[0]
    with pytest.raises(ValidationError) as info:
        parse_yaml(text, "in.yaml", max_nodes=100_000)  # composes; fails on types only
    assert "more than" not in str(info.value)


def test_an_alias_to_its_own_ancestor_is_refused() -> None:
    errors = errors_of(SERVICE % "&loop [*loop]")
    assert len(errors) == 1
    assert "refers to a node that contains it" in errors[0]


@pytest.mark.parametrize("depth", [150, 100_000])
def test_deep_nesting_is_a_clear_error_not_a_recursion_error(depth: int) -> None:
    errors = errors_of(SERVICE % ("[" * depth + "]" * depth))
    assert len(errors) == 1
    assert "line 5: nested more than 100 levels deep" in errors[0]
    assert "Recursion" not in errors[0]


def test_nesting_up_to_the_limit_is_read() -> None:
    text = SERVICE % ("[" * 90 + "]" * 90)
    errors = errors_of(text)  # an annotation must be text: a field error, no nesting error
    assert errors == [
        "in.yaml: Service default/cart: metadata.annotations.note: input should be a valid string"
    ]


def test_a_lone_surrogate_is_refused_naming_the_field() -> None:
    errors = errors_of(SERVICE % '"bad \\ud800 text"')
    assert errors == [
        "in.yaml: Service default/cart: metadata.annotations.note: contains U+D800, half of "
        "a UTF-16 surrogate pair, which is not a character and cannot be stored: write the "
        "character itself (or both halves of the pair)"
    ]


def test_a_surrogate_pair_written_as_two_escapes_is_one_character() -> None:
    (service,) = parse_yaml(SERVICE % '"\\U0001F600"')
    assert service.metadata.annotations["note"] == "\U0001f600"
