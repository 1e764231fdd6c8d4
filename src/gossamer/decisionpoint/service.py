"""``envoy.service.auth.v3.Authorization``: ``Check``.

The check's facts: ``attributes.source.principal`` (the peer certificate's URI SAN: the
calling service), the verified token's payload (``metadata_context`` of
``envoy.filters.http.jwt_authn``, key ``payload``), ``attributes.request.http`` method and
path (Envoy's normalised path; the query string is dropped by the decision), and the
service from the route's context extension. A denial is a 403 whose body names who was
refused what (the request id is in Envoy's access log and ``x-request-id``).

A check reads only what decides (the token's ``iss``, ``sub`` and mapped claims straight
from the payload ``Struct``), finds the deciding attribute once, and answers from the
answer cache (``answers``: the prebuilt response, per graph version) when the same facts
were decided before. Each decision, allow or deny, is appended to a
:class:`DecisionQueue` (when one is given) as a tuple with the request's ``x-request-id``;
it is formatted when reported, off the check path.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from gossamer.authz.end_users import EndUser
from gossamer.decisionpoint.answers import AnswerCache
from gossamer.decisionpoint.decision import (
    DecisionPoint,
    Policy,
    Verdict,
    decide_on,
    decide_user,
    service_ref,
)
from gossamer.decisionpoint.recorder import DecisionBatcher, DecisionQueue, DecisionRecord
from gossamer.decisionpoint.token import token_user

log = logging.getLogger(__name__)

JWT_NAMESPACE = "envoy.filters.http.jwt_authn"
PAYLOAD_KEY = "payload"
SERVICE_KEY = "service"
REQUEST_ID_HEADER = "x-request-id"
#: a header on a denial naming the refused decision's reason (for the caller's logs)
REASON_HEADER = "x-gossamer-denied"


@dataclass
class CheckStats:
    checks: int = 0
    denied: int = 0
    #: checks decided afresh (the rest were answered from the answer cache)
    decided: int = 0


def facts(request: external_auth_pb2.CheckRequest) -> dict[str, Any]:
    """What a check is decided on, as :meth:`DecisionPoint.decide`'s arguments (the
    token's payload as a dict: for tests and tools; the check path reads it in place)."""
    attrs = request.attributes
    payload: dict[str, Any] | None = None
    meta = attrs.metadata_context.filter_metadata
    if JWT_NAMESPACE in meta and PAYLOAD_KEY in meta[JWT_NAMESPACE].fields:
        value = meta[JWT_NAMESPACE].fields[PAYLOAD_KEY]
        payload = json_format.MessageToDict(value.struct_value)
    return {
        "service": attrs.context_extensions.get(SERVICE_KEY, ""),
        "method": attrs.request.http.method,
        "path": attrs.request.http.path,
        "principal": attrs.source.principal,
        "payload": payload,
    }


_OK = external_auth_pb2.CheckResponse(
    status=status_pb2.Status(code=code_pb2.OK),
    ok_response=external_auth_pb2.OkHttpResponse(),
)


def response(verdict: Verdict) -> external_auth_pb2.CheckResponse:
    if verdict.allowed:
        return _OK
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED, message=verdict.reason),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=http_status_pb2.Forbidden),
            headers=[
                base_pb2.HeaderValueOption(
                    header=base_pb2.HeaderValue(key=REASON_HEADER, value=verdict.reason[:500])
                )
            ],
            body=f"denied: {verdict.reason}\n",
        ),
    )


Answer = tuple[external_auth_pb2.CheckResponse, Verdict]


def _token_user(
    attrs: external_auth_pb2.AttributeContext, policy: Policy | None
) -> tuple[bool, EndUser | None]:
    """Whether the check carries a verified token's payload, and its end user (None also
    when it has no ``iss`` or ``sub``)."""
    meta = attrs.metadata_context.filter_metadata
    if JWT_NAMESPACE not in meta:
        return False, None
    fields = meta[JWT_NAMESPACE].fields
    if PAYLOAD_KEY not in fields:
        return False, None
    issuers = policy.issuers if policy is not None else {}
    return True, token_user(fields[PAYLOAD_KEY].struct_value, issuers)


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    """Answers checks; safe to call from several threads (the server's workers)."""

    def __init__(self, point: DecisionPoint, decisions: DecisionQueue | None = None) -> None:
        self.point = point
        self.stats = CheckStats()
        #: where each decision is queued for reporting (None: not recorded)
        self.decisions = decisions
        #: what reports them (its counts; set by ``serve``)
        self.batcher: DecisionBatcher | None = None
        #: whole answers per graph version (``answers``)
        self.answers: AnswerCache[Answer] = AnswerCache()
        self._count = threading.Lock()

    def check(self, request: external_auth_pb2.CheckRequest) -> external_auth_pb2.CheckResponse:
        attrs = request.attributes
        http = attrs.request.http
        service = attrs.context_extensions.get(SERVICE_KEY, "")
        method, path, principal = http.method, http.path, attrs.source.principal
        policy = self.point.policy  # once: a new version is for the next check
        token, user = _token_user(attrs, policy)
        answer, decided = self._answer(policy, service, method, path, principal, token, user)
        verdict = answer[1]
        with self._count:
            self.stats.checks += 1
            self.stats.denied += not verdict.allowed
            self.stats.decided += decided
        if not verdict.allowed:
            log.debug("denied: %s", verdict.reason)
        if self.decisions is not None:
            self.decisions.append(
                DecisionRecord(
                    http.headers.get(REQUEST_ID_HEADER, ""),
                    time.time(),
                    verdict.allowed,
                    service,
                    principal,
                    verdict.end_user,
                    method,
                    path,
                    verdict.reason,
                    verdict.target,
                )
            )
        return answer[0]

    def _answer(
        self,
        policy: Policy | None,
        service: str,
        method: str,
        path: str,
        principal: str,
        token: bool,
        user: EndUser | None,
    ) -> tuple[Answer, bool]:
        """The answer, kept or decided now (and whether it was decided now)."""
        ref = service_ref(service) if policy is not None else None
        if policy is None or ref is None:  # not kept: nothing to decide on
            verdict = decide_user(policy, service, method, path, principal, user, token)
            return (response(verdict), verdict), True
        found = policy.target(ref, path)
        name, held = (user.name, user.attributes) if user is not None else ("", ())
        key = (service, principal, name, held, token, method, found)
        answers = self.answers.of(policy)
        got = answers.get(key)
        if got is not None:
            return got, False
        verdict = decide_on(policy, service, found, method, principal, user, token)
        answer = answers[key] = (response(verdict), verdict)
        return answer, True

    def Check(  # the protocol's name
        self, request: external_auth_pb2.CheckRequest, context: grpc.ServicerContext
    ) -> external_auth_pb2.CheckResponse:
        return self.check(request)
