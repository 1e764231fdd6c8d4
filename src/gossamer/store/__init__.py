"""Durable, revisioned storage of manifests with a watch stream."""

from gossamer.store.base import Change, Store, StoredResource

__all__ = ["Change", "Store", "StoredResource"]
