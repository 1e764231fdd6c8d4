"""Hostile inputs for ``fuzz_config.py``: a coherent mesh (``gossamer.testing.strategies``)
made hostile in its data (odd unicode in any string or key, huge or odd numbers, deep
nesting, wrong types) and in its YAML text (anchors and aliases, merge keys, duplicate
keys, raw YAML tokens that change type, alias bombs), rendered as one YAML file."""

from __future__ import annotations

import io
import random
from typing import Any

import yaml
from hypothesis import strategies as st

from gossamer.testing.strategies import coherent_meshes

ODD_STRINGS = [
    "\ud800", "a\udfffb", "\x00", "nul\x00in", "\u202eevil", "\u200b", "\ufeff", "e\u0301",
    "\uffff", "\U0001f600", "x" * 10_000, "a\nb", "\r", "\t", " ", "", "%00", "../..",
    "${HOME}", "\\", '"', "'", "*", "a b", "\x7f", "\u0085", "\u2028", "-", ".", "*.",
    "a" * 64, "a" * 254, "\x1b[31m", "<script>", "\U000e0041",
]  # fmt: skip
ODD_NUMBERS: list[Any] = [
    2**31 - 1, 2**31, 2**32, 2**32 + 1, 2**63, 2**64, -1, -(2**63), 10**100, 0, 65535,
    65536, float("nan"), float("inf"), -0.0, 1e308, 0.5, True, False,
]  # fmt: skip
ODD_DURATIONS = [
    "99999999999h", "1e400s", "-1s", "0.0000001ms", "nan", "inf s", "1.5ms", "315576000001s",
    "9223372036854775807ms", "0s", "1d", "1 s", "P1D",
]  # fmt: skip
#: raw YAML put where a plain scalar was (each may change the value's type, or be refused)
RAW_TOKENS = [
    "no", "yes", "on", "off", "~", "null", "0x1F", "0o17", "1_000", "1e3", "2001-12-14",
    "2001-12-14t21:59:43.10-05:00", ".inf", "-.nan", "!!binary aGVsbG8=",
    "!!python/object/apply:os.system ['true']", "!!set {a, b}", "!!omap [a: 1]", "*nope",
    "123456789012345678901234567890", "!!float 1e400", "!!int 0b101", "=", "<<",
    "[" * 150 + "]" * 150, "{a: 1, a: 2}", '"\\ud800"', '"\\udc00x"', "!!str", "&a [*a]",
    '"\\0"', "!!timestamp 2001-12-14",
]  # fmt: skip
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)
_MERGE = yaml.ScalarNode("tag:yaml.org,2002:merge", "<<")
_PLACEHOLDER = "zzqraw{}zz"


def _slots(data: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) pair, depth first, in ``data``."""
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for k, v in list(items):
        out.append((data, k))
        if isinstance(v, dict | list):
            _slots(v, out)
    return out


def _pick(draw: st.DrawFn, options: list[Any]) -> Any:
    """Any of ``options`` alike: ``sampled_from`` favours the first ones (here the first
    document's top), so pick with a generator seeded by a drawn number."""
    return random.Random(draw(st.integers(0, 2**63))).choice(options)


def _replacement(draw: st.DrawFn, old: Any) -> Any:
    how = draw(st.sampled_from(["string", "text", "number", "duration", "nest", "type"]))
    if how == "string":
        return draw(st.sampled_from(ODD_STRINGS))
    if how == "text":  # any code point, lone surrogates included
        return draw(st.text(st.characters(exclude_categories=()), min_size=1, max_size=12))
    if how == "number":
        return draw(st.sampled_from(ODD_NUMBERS))
    if how == "duration":
        return draw(st.sampled_from(ODD_DURATIONS))
    if how == "nest":
        depth = draw(st.sampled_from([2, 10, 50, 99, 150]))
        for _ in range(depth):
            old = draw(st.sampled_from([[old], {"x": old}]))
        return old
    return draw(st.sampled_from([None, [], {}, True, 1.5, [old], {"x": old}, str(old)]))


def _mutate_data(draw: st.DrawFn, docs: list[dict[str, Any]]) -> list[str]:
    """Change 1-3 places in ``docs`` (values or keys); a note per change."""
    notes = []
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(docs, [])
        parent, key = _pick(draw, slots)
        if isinstance(parent, dict) and draw(st.integers(0, 4)) == 0:
            new_key = draw(st.sampled_from(ODD_STRINGS) | st.text(max_size=6))
            parent[new_key] = parent.pop(key)
            notes.append(f"key {key!r} -> {new_key!r}"[:120])
        elif isinstance(parent, dict) and draw(st.integers(0, 6)) == 0:
            del parent[key]
            notes.append(f"deleted {key!r}")
        else:
            parent[key] = _replacement(draw, parent[key])
            notes.append(f"{key!r} -> {parent[key]!r}"[:120])
    return notes


def _nodes(node: yaml.Node, out: list[yaml.Node]) -> list[yaml.Node]:
    out.append(node)
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            _nodes(child, out)
    elif isinstance(node, yaml.MappingNode):
        for _, v in node.value:
            _nodes(v, out)
    return out


def _contains(outer: yaml.Node, inner: yaml.Node) -> bool:
    return any(n is inner for n in _nodes(outer, []))


def _mutate_yaml(draw: st.DrawFn, roots: list[yaml.Node], raws: list[str]) -> list[str]:
    """Change the composed YAML of one document: alias, merge, duplicate key, raw token."""
    notes = []
    root = _pick(draw, roots)
    nodes = _nodes(root, [])
    maps = [n for n in nodes if isinstance(n, yaml.MappingNode) and n is not root]
    how = draw(st.sampled_from(["alias", "merge", "duplicate", "raw"]))
    if how in ("alias", "merge") and len(maps) >= 2:
        a, b = _pick(draw, maps), _pick(draw, maps)
        if a is not b and not (_contains(a, b) or _contains(b, a)):
            if how == "merge":  # b takes a's keys it lacks
                b.value.insert(0, (_MERGE, a))
            else:  # a's value becomes an alias of b (anchored where it first appears)
                holders = [n for n in [*maps, root] if any(v is a for _, v in n.value)]
                for holder in holders:
                    holder.value = [(k, b if v is a else v) for k, v in holder.value]
            notes.append(how)
    elif how == "duplicate" and maps:
        m = _pick(draw, maps)
        if m.value:
            k, v = draw(st.sampled_from(m.value))
            m.value.append((yaml.ScalarNode(k.tag, k.value), v))
            notes.append(f"duplicate key {k.value!r}"[:80])
    else:
        scalars = [n for n in nodes if isinstance(n, yaml.ScalarNode)]
        if scalars:
            s = _pick(draw, scalars)
            raws.append(draw(st.sampled_from(RAW_TOKENS)))
            s.tag, s.value, s.style = "tag:yaml.org,2002:str", _PLACEHOLDER.format(len(raws)), None
            notes.append(f"raw {raws[-1][:40]!r}")
    return notes


#: how a case is made hostile (the caller cycles through them: hypothesis's own choices
#: favour the first option and the smallest number)
MODES = ("clean", "data", "yaml", "both")


@st.composite
def hostile_yaml(draw: st.DrawFn, mode: str) -> tuple[str, list[str]]:
    """(YAML text of a mesh, notes saying what was made hostile) in ``mode``: one of
    ``MODES``, or ``bomb`` (a clean mesh, then an alias bomb)."""
    docs: list[dict[str, Any]] = draw(coherent_meshes())
    notes: list[str] = []
    if mode in ("data", "both"):
        notes += _mutate_data(draw, docs)
    dumper = yaml.SafeDumper(io.StringIO())
    roots = [dumper.represent_data(d) for d in docs]
    raws: list[str] = []
    if mode in ("yaml", "both"):
        for _ in range(draw(st.integers(1, 2))):
            notes += _mutate_yaml(draw, roots, raws)
    text = yaml.serialize_all(roots, Dumper=yaml.SafeDumper, allow_unicode=draw(st.booleans()))
    for i, raw in enumerate(raws, 1):
        text = text.replace(_PLACEHOLDER.format(i), raw, 1)
    if mode == "bomb":
        text += "---\n" + ALIAS_BOMB
        notes.append("alias bomb")
    return text, notes
