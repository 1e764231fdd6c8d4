"""``GET /v1/authz/graph``: what the NGAC decision point (``gossamer authz serve``) decides
with (docs/ngac.md, "End users").

The whole graph as plain data (``authz.snapshot.dump``), the Mesh's token issuers with their
``claimsToAttributes``, and a version that changes whenever the graph does (a change inside
the engine: an administrative batch, an obligation; a rebuild after an AccessPolicy apply)
or the Mesh's issuers do; not for a trial run that is undone (a validation, a dry run).
A long poll: with ``after`` equal to the current version the answer waits until it changes
or ``wait`` seconds pass. Any operator token with the read right may ask, and decision
points' tokens (``GET`` on ``gossamer:authz-graph`` only).
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query

from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.changes import Changes
from gossamer.authz.changes import GraphChange
from gossamer.authz.engine import AuthzEngine
from gossamer.authz.graph import Graph
from gossamer.authz.snapshot import dump
from gossamer.controlplane.plane import ControlPlane
from gossamer.registry.api_access import GRAPH_OBJECT

GRAPH_PATH = "/v1/authz/graph"
#: the longest a poll may wait (s)
MAX_WAIT_S = 60.0


class GraphBoard:
    """The graph document, made again after a change; wakes pollers."""

    def __init__(self, plane: ControlPlane, engine: AuthzEngine) -> None:
        self._plane = plane
        self._engine = engine
        self._graph: Graph | None = None
        #: versions are unique across restarts of the control plane
        self._epoch = os.urandom(4).hex()
        self._counter = 0
        self._document: dict[str, Any] | None = None
        self.changes = Changes()  # (released when the server stops)
        plane.add_listener({"AccessPolicy", "AccessCommand", "Mesh"}, self._on_store)

    @property
    def version(self) -> str:
        return f"{self._epoch}-{self._counter}"

    def graph_changed(self, change: GraphChange) -> None:
        """The engine's graph changed in place. Not during a trial run (a validation, a
        batch's check, a refused apply): it is undone, and a bump would make every decision
        point fetch the whole graph again for nothing. An AccessPolicy made in place is no
        trial (``AuthzEngine.trial``, unlike ``quiet``) and bumps: a poller may have been
        answered while that rebuild was under way, after the store write's bump."""
        if not self._engine.trial:
            self._bump()

    def _on_store(self, changes: object, revision: int) -> None:
        self._bump()

    def _bump(self) -> None:
        self._document = None
        self._counter += 1
        self.changes.changed()

    async def current(self) -> dict[str, Any]:
        engine = self._engine
        if engine.rebuild_pending:
            await engine.rebuild()
        graph = engine.graph
        if graph is not self._graph:
            if self._graph is not None:
                self._graph.unsubscribe(self)
            graph.subscribe(self)
            self._graph = graph
            self._bump()
        if self._document is None:
            self._document = {"version": self.version, "graph": dump(graph)}
            self._document["issuers"] = self._issuers()
        return self._document

    def _issuers(self) -> list[dict[str, Any]]:
        model = self._plane.model
        if model is None:
            return []
        return [
            {"issuer": j.issuer, "claimsToAttributes": j.claimsToAttributes}
            for j in model.mesh.spec.authentication.jwt
        ]

    async def wait(self, after: str, wait_s: float) -> dict[str, Any]:
        """The document once its version is not ``after`` (or after ``wait_s``)."""
        document = await self.current()
        if document["version"] != after or wait_s <= 0:
            return document
        await self.changes.next(wait_s)
        return await self.current()


def install_authz_graph(app: FastAPI, board: GraphBoard, auth: Authenticator | None) -> None:
    router = APIRouter(tags=["authz"], dependencies=[require_operator(auth, on=GRAPH_OBJECT)])

    @router.get(GRAPH_PATH, response_model=dict[str, Any])
    async def graph(
        after: Annotated[str, Query(description="the version the caller has")] = "",
        wait: Annotated[
            float, Query(ge=0, le=MAX_WAIT_S, description="seconds to wait for a change")
        ] = 0,
    ) -> dict[str, Any]:
        """The NGAC graph and the Mesh's token issuers (docs/ngac.md, "End users")."""
        return await board.wait(after, wait)

    app.include_router(router)


__all__ = ["GRAPH_PATH", "GraphBoard", "install_authz_graph"]
