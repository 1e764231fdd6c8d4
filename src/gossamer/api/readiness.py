"""Readiness as a router dependency: one place that refuses requests until the control
plane has loaded its state (the place authentication will hook in too).

A router whose routes change state, or need it loaded, declares
``dependencies=[require_ready(service)]``; while ``service.ready`` is false each of its
requests is answered ``503 not_ready`` before the route runs. ``/healthz``, ``/readyz``
and reads straight from the store do not declare it.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import Depends

from gossamer.errors import NotReadyError

NOT_READY = "the control plane is still loading its state; retry in a moment"


class Loading(Protocol):
    @property
    def ready(self) -> bool:
        """True once the state is loaded and served."""
        ...


def require_ready(service: Loading) -> Any:
    """A FastAPI dependency (for ``dependencies=[...]``) raising ``NotReadyError`` while
    ``service`` is not ready."""

    def ready() -> None:
        if not service.ready:
            raise NotReadyError(NOT_READY)

    return Depends(ready)
