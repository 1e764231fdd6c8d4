"""The request-decision trail's file (``<data-dir>/decisions.jsonl``): one JSON line per
record, appended; read back from its end when the control plane starts.

Bounded twice: past ``ROTATE_BYTES`` the file becomes ``decisions.jsonl.1`` (replacing the
one before) and a new one starts, so the trail takes at most about twice that on disk; and
a start reads at most ``READ_BYTES`` from the end of the two, newest first, stopping once it
has the records the trail keeps. A line that does not parse (the torn last line of a crash,
or damage) is skipped and counted, never fatal. Blocking: call these in a worker thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

#: past this size the file is rotated to ``<name>.1``
ROTATE_BYTES = 64 * 1024 * 1024
#: a start reads at most this much, from the end (about 150,000 typical records)
READ_BYTES = 64 * 1024 * 1024
#: read backwards in blocks of this size
_BLOCK = 1024 * 1024


def rotated(path: Path) -> Path:
    """Where the previous file goes: ``decisions.jsonl.1``."""
    return path.with_name(path.name + ".1")


@dataclass
class Loaded(Generic[T]):
    """What a start read back: ``records`` oldest first."""

    records: list[T] = field(default_factory=list)
    #: lines that did not parse as a record
    skipped: int = 0
    #: the file does not end with a newline (the next append starts a line first)
    torn: bool = False


def _lines_backwards(path: Path, budget: int) -> Iterator[bytes]:
    """Complete lines of ``path`` from its last to its first, within ``budget`` bytes from
    its end (a line cut by the budget is not yielded)."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return
    with f:
        end = f.seek(0, os.SEEK_END)
        start = max(0, end - budget)
        pos, rest = end, b""
        while pos > start:
            step = min(_BLOCK, pos - start)
            pos -= step
            f.seek(pos)
            chunk = f.read(step) + rest
            first, *lines = chunk.split(b"\n")
            yield from reversed(lines)
            rest = first
        if start == 0:
            yield rest  # the first line of the file is whole


def ends_torn(path: Path) -> bool:
    """Whether ``path`` exists, is not empty and does not end with a newline."""
    try:
        with path.open("rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except FileNotFoundError:
        return False


def read_newest(
    path: Path, keep: int, parse: Callable[[dict[str, object]], T], *, budget: int = READ_BYTES
) -> Loaded[T]:
    """The newest ``keep`` records of ``path`` and, before it, its rotated file, within
    ``budget`` bytes read from their end."""
    out: Loaded[T] = Loaded(torn=ends_torn(path))
    newest_first: list[T] = []
    for file in (path, rotated(path)):
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            continue
        for line in _lines_backwards(file, budget):
            if len(newest_first) >= keep:
                break
            if not line.strip():
                continue
            try:
                newest_first.append(parse(json.loads(line)))
            except (ValueError, TypeError):
                out.skipped += 1
        budget -= size
        if len(newest_first) >= keep or budget <= 0:
            break
    out.records = newest_first[::-1]
    return out


def append(path: Path, lines: str, *, rotate_bytes: int = ROTATE_BYTES) -> None:
    """Append ``lines`` to ``path`` (0600, created if need be); past ``rotate_bytes``
    afterwards, move it to ``<name>.1`` so the next append starts a new file."""
    # 0600 whatever the umask: who was refused what is no one else's business
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        os.fchmod(fd, 0o600)
        f.write(lines)
        f.flush()
        size = os.fstat(fd).st_size
    if size > rotate_bytes:
        os.replace(path, rotated(path))
