"""Text that cannot be stored: a lone UTF-16 surrogate (issue 7 R2).

A Python ``str`` holds a surrogate code point (U+D800..U+DFFF) only when it was decoded
from a lone ``\\uD800``-style escape in JSON or YAML: a proper pair becomes one character.
Such a string cannot be encoded as UTF-8, so storing it would break every response that
includes it. Inputs are checked with ``lone_surrogates`` and refused naming the field.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def _key(key: object) -> str:
    text = str(key)
    return ascii(text) if _SURROGATE.search(text) else text


def lone_surrogates(data: object, limit: int = 10) -> list[tuple[str, str]]:
    """``(field path, message)`` for each string or mapping key in ``data`` (parsed JSON or
    YAML) holding a lone surrogate; at most ``limit``, in document order."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[str, object]] = [("", data)]
    while stack and len(found) < limit:
        path, value = stack.pop()
        if isinstance(value, str):
            if m := _SURROGATE.search(value):
                found.append((path, surrogate_message(m.group())))
        elif isinstance(value, dict):
            items = []
            for k, v in value.items():
                sub = f"{path}.{_key(k)}" if path else _key(k)
                if isinstance(k, str) and (m := _SURROGATE.search(k)):
                    found.append((sub, "the key " + surrogate_message(m.group())))
                items.append((sub, v))
            stack.extend(reversed(items))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(value)]))
    return found


def surrogate_message(char: str) -> str:
    return (
        f"contains U+{ord(char):04X}, half of a UTF-16 surrogate pair, which is not a "
        "character and cannot be stored: write the character itself (or both halves of "
        "the pair)"
    )


def replace_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (for showing what is stored)."""
    return _SURROGATE.sub("\ufffd", text)
