"""Open a store from what a user writes in a flag or a settings file.

Accepted forms:

- ``memory:`` or ``memory://`` — an in-memory store (lost on exit);
- ``sqlite:///abs/path/store.db``, ``sqlite:relative/store.db`` or a plain path — SQLite;
- ``etcd://h1:2379,h2:2379[/prefix]`` — etcd (``etcd.py``; docs/store.md, "etcd").
"""

from __future__ import annotations

from pathlib import Path

from gossamer.errors import ConfigError
from gossamer.store.base import Store
from gossamer.store.etcd import EtcdStore
from gossamer.store.etcd_identity import MARKER_NAME
from gossamer.store.memory import DEFAULT_HISTORY, MemoryStore
from gossamer.store.sqlite import SQLiteStore

_FORMS = (
    "'memory:', 'sqlite:///absolute/path.db', 'sqlite:relative/path.db', a plain file path "
    "or 'etcd://host:2379[,host:2379...][/prefix]'"
)


async def open_store(
    url_or_path: str | Path, *, history: int = DEFAULT_HISTORY, data_dir: Path | None = None
) -> Store:
    """Open (creating if needed) the store named by ``url_or_path``.

    ``data_dir``: where an etcd store's identity is remembered (``gossamer.etcd.id``), so
    an etcd that lost the store is refused (``etcd_identity.py``); SQLite keeps its marker
    beside its file.
    """
    if isinstance(url_or_path, str) and is_etcd(url_or_path):
        marker = None if data_dir is None else data_dir / MARKER_NAME
        return await EtcdStore.open(url_or_path, history=history, marker=marker)
    path = url_or_path if isinstance(url_or_path, Path) else sqlite_path(url_or_path)
    if path is None:
        return MemoryStore(history=history)
    return await SQLiteStore.open(path, history=history)


def is_etcd(location: str) -> bool:
    return location.strip().lower().startswith("etcd:")


def sqlite_path(location: str) -> Path | None:
    """The SQLite file a store location names, or ``None`` for the in-memory store."""
    text = location.strip()
    if not text:
        raise ConfigError(f"store location is empty; give {_FORMS}")
    scheme, sep, rest = text.partition(":")
    if not sep or len(scheme) == 1 or "/" in scheme or "\\" in scheme:
        # No scheme (or a Windows drive letter): a path.
        return Path(text)
    scheme = scheme.lower()
    if scheme == "memory":
        if rest not in ("", "//"):
            raise ConfigError(
                f"store location {text!r}: the memory store takes no path; write 'memory:'"
            )
        return None
    if scheme == "sqlite":
        path = rest[2:] if rest.startswith("//") else rest
        if rest.startswith("//") and not path.startswith("/"):
            raise ConfigError(
                f"store location {text!r}: a sqlite URL with '//' needs an "
                "absolute path ('sqlite:///var/lib/gossamer/store.db'); for a "
                "relative path write 'sqlite:store.db'"
            )
        if not path:
            raise ConfigError(f"store location {text!r} names no file; give {_FORMS}")
        return Path(path)
    raise ConfigError(f"store location {text!r}: unknown scheme {scheme!r}; give {_FORMS}")
