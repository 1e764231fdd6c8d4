"""Durable, revisioned storage of manifests with a watch stream."""

from gossamer.store.base import Change, ChangeBatch, Store, StoredResource, StoreStatistics
from gossamer.store.factory import open_store
from gossamer.store.memory import MemoryStore
from gossamer.store.sqlite import SQLiteStore

__all__ = [
    "Change",
    "ChangeBatch",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "StoreStatistics",
    "StoredResource",
    "open_store",
]
