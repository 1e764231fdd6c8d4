"""One writer and one watcher of the store: only the reconciler (``controlplane/``) and the
composition root (``server/``) call ``apply`` or ``watch`` on a ``Store``.

Everything else changes the mesh through ``ControlPlane.apply`` (admission: owner and
internal-kind checks, validators, then the store) and follows it through the plane's
listeners. A second writer would bypass admission; a second watcher would see changes in
an order of its own. Over the source with ``ast``: a call of ``.apply``/``.watch`` counts
when its receiver is named like a store (``store``, ``self._store``, ``app.store`` ...) or
was annotated with a store type in the same module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gossamer

ROOT = Path(gossamer.__file__).parent
#: may call them: the reconciler, the composition root, and the store itself
ALLOWED = {"controlplane", "server", "store"}
#: single files that may, and why
ALLOWED_FILES = {
    # ``gossamer restore`` writes an archive into an empty store while no plane runs
    "backup/restore.py",
    # ``rollback`` reads the change log since a revision (a watch that ends; it writes
    # through ControlPlane.apply)
    "backup/history.py",
}
METHODS = {"apply", "watch"}
STORE_TYPES = {"Store", "MemoryStore", "SQLiteStore"}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func)}()"
    return "?"


def _is_store_type(annotation: ast.expr | None) -> bool:
    if annotation is None:
        return False
    text = ast.unparse(annotation).replace('"', "").replace("'", "")
    return any(part.strip().split(".")[-1] in STORE_TYPES for part in text.split("|"))


def _store_names(tree: ast.AST) -> set[str]:
    """Names (``x``, ``self.x``) annotated with a store type anywhere in the module."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and _is_store_type(node.annotation):
            names.add(node.arg)
        elif isinstance(node, ast.AnnAssign) and _is_store_type(node.annotation):
            names.add(_dotted(node.target))
    return names


def store_calls(source: str, filename: str = "<source>") -> list[str]:
    """``apply``/``watch`` calls on a store in ``source``, as ``line: receiver.method``."""
    tree = ast.parse(source, filename)
    typed = _store_names(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in METHODS:
            continue
        receiver = _dotted(node.func.value)
        last = receiver.rsplit(".", 1)[-1]
        if "store" in last.lower() or receiver in typed:
            found.append((node.lineno, f"{receiver}.{node.func.attr}"))
    return [f"{line}: {call}" for line, call in sorted(found)]


def test_only_the_reconciler_and_the_root_write_or_watch_the_store() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ALLOWED or str(rel) in ALLOWED_FILES:
            continue
        offenders += [f"{rel}:{hit}" for hit in store_calls(path.read_text(), str(path))]
    assert not offenders, (
        "the store is written and watched only by controlplane/ and server/ (go through "
        "ControlPlane.apply, follow ControlPlane.add_listener):\n" + "\n".join(offenders)
    )


def test_the_check_sees_the_ways_a_store_is_reached() -> None:
    """The rule above is only as good as this detector."""
    source = """
from gossamer.store.base import Store

class Engine:
    def __init__(self, db: Store, plane: object) -> None:
        self._store = db
        self.backend: "Store | None" = None
        self.plane = plane

    async def write(self, app: object) -> None:
        await self._store.apply(puts=[])
        async for _ in self._store.watch(0):
            pass
        await db.apply(deletes=[])
        await self.backend.apply()
        await app.store.watch(3)
        await self.plane.apply([])          # the control plane: fine
        await service.apply([])             # an API service: fine
        engine.watch()                      # unrelated: fine
"""
    hits = [h.split(": ", 1)[1] for h in store_calls(source)]
    assert hits == [
        "self._store.apply",
        "self._store.watch",
        "db.apply",
        "self.backend.apply",
        "app.store.watch",
    ], hits
