"""The one exception tree. Every message says what happened and how to fix it.

Foreign exceptions (sqlite, grpc, pydantic, OS errors) are mapped to these at the boundary
of the module that sees them; a pydantic error becomes ``FieldError``s through
``field_errors``. The REST API answers each server-side error with the status and code of
its row in ``gossamer.api.errors.HTTP_ERRORS``; a client (the CLI, the agent) turns an
error answer back into an ``ApiError`` of the branch that says what to do about it.

::

    GossamerError                       (API: 500 internal)
    ├── ValidationError                 input refused, nothing changed      422 validation
    │   └── UnknownKindError            a kind nobody knows                 400 unknown_kind
    ├── NotFoundError                                                       404 not_found
    ├── ConflictError                   lost a race (a revision moved)      409 conflict
    ├── PermissionDeniedError                                               403 forbidden
    │   └── AccessDeniedError           an NGAC command without the right   403 forbidden
    ├── AuthError                       token or credential refused;        401 unauthorized
    │                                   ``reason`` (an ``AuthReason``)
    ├── NotReadyError                   still loading its state: retry      503 not_ready
    ├── StoreError                      could not read or durably write     503 store
    ├── WaitTimeoutError                stored, but not every proxy ACKed   504 wait_timeout
    ├── PollTimeoutError                a polled condition stayed false     504 timeout
    │                                   (also a ``TimeoutError``)
    ├── ConfigError                     settings of a command or process    400 config
    ├── ProcessError                    a process we run failed or died     502 proxy
    │   └── EnvoyError
    ├── XdsError                        a protocol error on an xDS stream   502 xds
    └── ClientError                     a call to the control plane's API failed (CLI, agent)
        ├── UnreachableError            nothing answered, or the connection broke: retry
        ├── FateUnknownError            a change went out, no answer came: it may be stored
        ├── UntrustedServerError        the server is not the CA's (fingerprint, chain,
        │                               name): nothing secret was sent
        └── ApiError                    it answered an error: ``status``, ``code``, ``errors``
            ├── ServerError             5xx, or not the protocol: retry later
            ├── RefusedError            401: ``reason`` decides (only ``revoked`` stops an agent)
            └── RejectedError           other 4xx: retrying alone will not fix it
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol


class GossamerError(Exception):
    """Base of every error Gossamer raises on purpose."""


# -- input ------------------------------------------------------------------------------


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


class UnknownKindError(ValidationError):
    """A kind named in a URL or on the command line is not one Gossamer knows."""


class PydanticErrors(Protocol):
    """A pydantic ``ValidationError`` (or FastAPI's ``RequestValidationError``)."""

    def errors(self) -> Sequence[Mapping[str, Any]]: ...


def field_errors(
    error: PydanticErrors,
    *,
    resource: str = "",
    source: str = "",
    root: Sequence[int | str] = (),
    skip: int = 0,
    model: object = None,
) -> list[FieldError]:
    """Each problem pydantic found, as a ``FieldError`` naming its field (the one way).

    ``root`` replaces the first ``skip`` parts of every location (a request body's
    ``body``, a batch validated item by item). ``model``: the pydantic model validated,
    whose field names an unknown field is matched against (did you mean ...?).
    """
    return [
        FieldError(
            _message(detail, model),
            _path((*root, *tuple(detail["loc"])[skip:])),
            resource,
            source,
        )
        for detail in error.errors()
    ]


def _path(loc: Sequence[int | str]) -> str:
    """``("spec", "ports", 0, "port")`` -> ``spec.ports[0].port``, without the validator
    and union tags pydantic puts in."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith(("function-", "tagged-union")):
            out += f".{part}" if out else part
    return out


def _fields_at(model: object, loc: Sequence[int | str]) -> list[str]:
    """The field names (and aliases) of the model at ``loc`` inside ``model``; [] if the
    path leaves the models (a dict, a union pydantic tagged)."""
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if isinstance(part, int) or not isinstance(fields, dict):
            continue
        found = fields.get(part) or next(
            (f for f in fields.values() if getattr(f, "alias", None) == part), None
        )
        if found is None:
            continue  # a union's tag: the same model goes on
        model = _model_in(getattr(found, "annotation", None))
    fields = getattr(model, "model_fields", None)
    if not isinstance(fields, dict):
        return []
    return [*fields, *(a for f in fields.values() if (a := getattr(f, "alias", None)))]


def _model_in(annotation: object) -> object:
    """The first pydantic model in ``annotation`` (``X``, ``X | None``, ``list[X]``)."""
    if isinstance(getattr(annotation, "model_fields", None), dict):
        return annotation
    for arg in typing.get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def closest(given: str, valid: Sequence[str]) -> str | None:
    """The one of ``valid`` that ``given`` is probably a misspelling of, if any."""
    close = difflib.get_close_matches(given, list(valid), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(given: str, valid: Sequence[str]) -> str:
    """`` did you mean 'X'?`` when ``given`` is close to one of ``valid``; else ""."""
    close = closest(given, valid)
    return f" did you mean {close!r}?" if close else ""


def _message(detail: Mapping[str, Any], model: object = None) -> str:
    kind = str(detail["type"])
    if kind == "extra_forbidden":
        loc = tuple(detail["loc"])
        name = loc[-1] if loc and isinstance(loc[-1], str) else ""
        hint = did_you_mean(name, _fields_at(model, loc[:-1])) if name and model else ""
        return f"unknown field:{hint}" if hint else "unknown field: remove it or check its spelling"
    if kind == "missing":
        return "required field is missing"
    msg = str(detail["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    msg = msg[:1].lower() + msg[1:]
    given = detail.get("input")
    if kind.endswith("_type") and isinstance(given, str | int | float | bool):
        msg += f", not {given!r}"[:80]  # strict types: say what was sent
    return msg


# -- the control plane's state and its callers --------------------------------------------


class NotFoundError(GossamerError):
    """A named thing does not exist."""


class ConflictError(GossamerError):
    """A change lost a race with another change (e.g. a revision precondition failed)."""


class StaleModelError(ConflictError):
    """A write checked on the model at one revision met a store with changes after it
    (another replica's): nothing was written. Read what changed and check again."""

    def __init__(self, message: str, revision: int = 0) -> None:
        super().__init__(message)
        #: the newest revision that wrote resources, as far as the store can tell (0: unknown)
        self.revision = revision


class PermissionDeniedError(GossamerError):
    """The caller may not do this (e.g. an NGAC administrative command without the right)."""


class AccessDeniedError(PermissionDeniedError):
    """The caller lacks the administrative right a command needs; nothing was changed."""


#: Why a 401 was answered (the ``reason`` of its body, docs/agent-protocol.md). An agent
#: stops only for ``revoked``, the operator's kill switch; for every other reason it keeps
#: its Envoys serving their last configuration and retries (issue 7, R1).
AuthReason = Literal[
    "no_credential",
    "wrong_credential",
    "unknown_agent",
    "revoked",
    "token_unknown",
    "token_used",
    "token_expired",
]


class AuthError(GossamerError):
    """A join token or agent credential was refused (unknown, used, expired or revoked).

    The REST API answers 401 with the message as its one line and ``reason`` beside it.
    """

    def __init__(self, message: str, reason: AuthReason) -> None:
        super().__init__(message)
        self.reason: AuthReason = reason


class NotReadyError(GossamerError):
    """The control plane is still loading its state; the request can be retried shortly."""


class StoreError(GossamerError):
    """The store could not read or durably write; the change was not accepted."""


class FencedError(StoreError):
    """A singleton's write carried a fencing token that is no longer the leader's (this
    replica lost its leadership); nothing was written."""


class WaitTimeoutError(GossamerError):
    """A change was accepted (it is durable) but not every affected proxy ACKed it in time."""


class PollTimeoutError(GossamerError, TimeoutError):
    """A polled condition did not become true before its deadline (``polling.wait_until``)."""


# -- processes and protocols ------------------------------------------------------------


class ConfigError(GossamerError):
    """Settings given to a command or process are wrong (bad address, missing directory, ...)."""


class ProcessError(GossamerError):
    """A process we start (Envoy, a backend, a service) failed to start or died."""


class EnvoyError(ProcessError):
    """Envoy failed to start, rejected its bootstrap, or its admin API misbehaved."""


class XdsError(GossamerError):
    """A protocol error on an xDS stream."""


class CountersUnavailableError(GossamerError):
    """The rate-limit service's counters (Redis) did not answer in time."""


class TelemetryUnavailableError(GossamerError):
    """The telemetry service's query API did not answer, or refused the control plane's
    token (the message says which and where to look)."""


class JwksFetchError(GossamerError):
    """A Mesh issuer's ``jwks.uri`` could not be fetched, or did not hold a usable JWKS
    (the message names the issuer, the uri and what is wrong)."""


# -- clients of the control plane's API (the CLI, the agent) ----------------------------


class ClientError(GossamerError):
    """A call to the control plane's REST API did not succeed."""


class ReportRefusedError(ClientError):
    """A batch of reports (a decision point's decisions) will never be taken: the control
    plane refused it (422, 403, ...); retrying would not help, so it is dropped and counted."""


class UnreachableError(ClientError):
    """Nothing answered at the control plane's address (or it broke the connection)."""


class FateUnknownError(ClientError):
    """A change was sent but no answer came: it may or may not have been stored."""


class UntrustedServerError(ClientError):
    """The server at the control plane's address could not prove it is the one the token
    (its CA fingerprint), ``--ca-file`` or the kept trust bundle names: no token or
    credential was sent to it."""


class ApiError(ClientError):
    """The control plane answered with an error: one line per problem as it wrote them,
    its ``code`` (a row of the API's table), and whether the change is ``stored`` anyway."""

    def __init__(self, status: int, code: str, errors: list[str], *, stored: bool = False) -> None:
        self.status = status
        self.code = code
        self.errors = errors
        self.stored = stored
        super().__init__("\n".join(errors) or f"HTTP {status}")

    @staticmethod
    def answered(
        status: int,
        code: str,
        errors: list[str],
        *,
        stored: bool = False,
        reason: str | None = None,
    ) -> ApiError:
        """The error for an answer: ``RefusedError`` for 401, ``RejectedError`` for another
        4xx, ``ServerError`` for the rest (5xx, or an answer outside the protocol)."""
        if status == 401:
            return RefusedError(status, code, errors, stored=stored, reason=reason)
        if 400 <= status < 500:
            return RejectedError(status, code, errors, stored=stored)
        return ServerError(status, code, errors, stored=stored)


class ServerError(ApiError):
    """The control plane answered 5xx (e.g. still loading) or outside the protocol: retry
    later."""


class RefusedError(ApiError):
    """The token or credential was refused (401); ``reason`` as the control plane gave it
    (an ``AuthReason`` such as ``revoked`` or ``unknown_agent``; None if it gave none)."""

    def __init__(
        self,
        status: int,
        code: str,
        errors: list[str],
        *,
        stored: bool = False,
        reason: str | None = None,
    ) -> None:
        super().__init__(status, code, errors, stored=stored)
        self.reason = reason

    @property
    def revoked(self) -> bool:
        """The operator revoked this agent: the one refusal that stops it."""
        return self.reason == "revoked"


class RejectedError(ApiError):
    """The control plane refused the request itself (4xx other than 401): retrying alone
    will not fix it."""
