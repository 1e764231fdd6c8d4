"""``envoy.service.ratelimit.v3.RateLimitService`` over grpc.aio: ``ShouldRateLimit``.

Each check: the ``Decider`` names the counters the request's descriptors add to, the
``Counters`` add to them (one Redis round trip), the ``Decider`` turns their values into
the answer. Envoy builds ``x-ratelimit-limit``, ``-remaining`` and ``-reset`` from each
status's ``current_limit``, ``limit_remaining`` and ``duration_until_reset``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from google.protobuf import duration_pb2

from gossamer.errors import CountersUnavailableError
from gossamer.ratelimit.counters import Counters
from gossamer.ratelimit.decision import Answer, Decider, Status

log = logging.getLogger(__name__)

Response = rls_pb2.RateLimitResponse
UNITS = {
    "second": Response.RateLimit.SECOND,
    "minute": Response.RateLimit.MINUTE,
    "hour": Response.RateLimit.HOUR,
    "day": Response.RateLimit.DAY,
}


@dataclass
class CheckStats:
    checks: int = 0
    over_limit: int = 0
    counter_failures: int = 0


def _status(s: Status) -> rls_pb2.RateLimitResponse.DescriptorStatus:
    out = Response.DescriptorStatus(code=Response.OVER_LIMIT if s.over else Response.OK)
    if s.rule is not None:
        out.current_limit.CopyFrom(
            Response.RateLimit(
                name=s.rule.id, requests_per_unit=s.rule.requests, unit=UNITS[s.rule.unit]
            )
        )
        out.limit_remaining = s.remaining
        out.duration_until_reset.CopyFrom(duration_pb2.Duration(seconds=s.reset_s))
    return out


def response(answer: Answer) -> rls_pb2.RateLimitResponse:
    return Response(
        overall_code=Response.OVER_LIMIT if answer.over else Response.OK,
        statuses=[_status(s) for s in answer.statuses],
    )


class RateLimitServicer(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    def __init__(
        self, decider: Decider, counters: Counters, clock: Callable[[], float] = time.time
    ) -> None:
        self.decider = decider
        self.counters = counters
        self.clock = clock
        self.stats = CheckStats()
        self._failing = False

    async def check(self, request: rls_pb2.RateLimitRequest) -> rls_pb2.RateLimitResponse:
        now = self.clock()
        descriptors = [[(e.key, e.value) for e in d.entries] for d in request.descriptors]
        hits = self.decider.hits(request.domain, descriptors, now)
        self.stats.checks += 1
        counted = [(h.key, h.ttl) for h in hits if h is not None]
        if self.decider.rules is None:
            answer = self.decider.failed(hits, now)
        else:
            try:
                counts = await self.counters.add(counted, request.hits_addend or 1)
            except CountersUnavailableError as e:
                self.stats.counter_failures += 1
                if not self._failing:
                    log.warning("%s (failure mode %s)", e, self.decider.failure_mode)
                self._failing = True
                answer = self.decider.failed(hits, now)
            else:
                if self._failing:
                    log.info("counters answer again")
                self._failing = False
                answer = self.decider.answer(hits, counts, now)
        if answer.over:
            self.stats.over_limit += 1
        return response(answer)

    async def ShouldRateLimit(  # the protocol's name
        self, request: rls_pb2.RateLimitRequest, context: grpc.aio.ServicerContext
    ) -> rls_pb2.RateLimitResponse:
        return await self.check(request)
