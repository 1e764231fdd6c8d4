"""The one exception tree. Every message says what happened and how to fix it.

Foreign exceptions (sqlite, grpc, pydantic, OS errors) are mapped to these at the boundary
of the module that sees them.
"""

from __future__ import annotations

from dataclasses import dataclass


class GossamerError(Exception):
    """Base of every error Gossamer raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in one field of one resource.

    Rendered as ``route.yaml: Route default/cart: spec.rules[1].destinations[0].weight: must
    be 0..100``.
    """

    message: str
    path: str = ""
    resource: str = ""
    source: str = ""

    def __str__(self) -> str:
        parts = [p for p in (self.source, self.resource, self.path) if p]
        return ": ".join([*parts, self.message])


class ValidationError(GossamerError):
    """Input was rejected; nothing was changed."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors) or "invalid input")


class NotFoundError(GossamerError):
    """A named thing does not exist."""


class ConflictError(GossamerError):
    """A change lost a race with another change (e.g. a revision precondition failed)."""


class StoreError(GossamerError):
    """The store could not read or durably write; the change was not accepted."""


class XdsError(GossamerError):
    """A protocol error on an xDS stream."""


class ProcessError(GossamerError):
    """A process we start (Envoy, a backend, a service) failed to start or died."""


class EnvoyError(ProcessError):
    """Envoy failed to start, rejected its bootstrap, or its admin API misbehaved."""


class ConfigError(GossamerError):
    """Settings given to a command or process are wrong (bad address, missing directory, ...)."""


class WaitTimeoutError(GossamerError):
    """A change was accepted (it is durable) but not every affected proxy ACKed it in time."""


class PermissionDeniedError(GossamerError):
    """The caller may not do this (e.g. an NGAC administrative command without the right)."""
