"""The rate-limit service's decisions without I/O: fixed windows aligned to the epoch,
counters keyed by (rule, key value, window), OVER_LIMIT past the limit with what Envoy
turns into x-ratelimit-* headers, unknown descriptors passed, and the failure modes."""

from __future__ import annotations

import pytest

from gossamer.model.rate_limits import GlobalRule
from gossamer.ratelimit.counters import MemoryCounters
from gossamer.ratelimit.decision import DOMAIN, RULE_KEY, Decider, RuleSet
from gossamer.ratelimit.rules import parse_rules, rules_document
from gossamer.ratelimit.service import RateLimitServicer

BY_KEY = GlobalRule("shop/api/by-key", 3, "second", "header")
DAILY = GlobalRule("shop/api/daily", 2, "day")
RULES = RuleSet.of("7", [BY_KEY, DAILY], "open")
T = 1_700_000_000.25  # a second's window is [1_700_000_000, 1_700_000_001)


def desc(rule: str, *key: str) -> list[tuple[str, str]]:
    return [(RULE_KEY, rule), *(("key", k) for k in key)]


def test_windows_are_aligned_and_keys_split_budgets() -> None:
    d = Decider(RULES)
    [a, b, none] = d.hits(
        DOMAIN, [desc(BY_KEY.id, "k1"), desc(BY_KEY.id, "k2"), desc(BY_KEY.id)], T
    )
    assert a is not None and b is not None and none is not None
    assert len({a.key, b.key, none.key}) == 3  # k1, k2 and "no key" count apart
    assert a.window_end == 1_700_000_001 and a.ttl == 1 + 2
    [later] = d.hits(DOMAIN, [desc(BY_KEY.id, "k1")], T + 0.7)
    [next_window] = d.hits(DOMAIN, [desc(BY_KEY.id, "k1")], T + 1)
    assert later is not None and next_window is not None
    assert later.key == a.key and next_window.key != a.key
    [day] = d.hits(DOMAIN, [desc(DAILY.id)], T)
    assert day is not None and day.window_end % 86400 == 0


def test_over_the_limit_with_remaining_and_reset() -> None:
    d = Decider(RULES)
    hits = d.hits(DOMAIN, [desc(BY_KEY.id, "k"), desc(DAILY.id)], T)
    ok = d.answer(hits, [3, 1], T)
    assert not ok.over
    assert [(s.remaining, s.reset_s) for s in ok.statuses] == [(0, 1), (1, 6400)]
    over = d.answer(hits, [4, 1], T)
    assert over.over and over.statuses[0].over and not over.statuses[1].over
    assert over.statuses[0].rule == BY_KEY and over.statuses[0].remaining == 0


def test_unknown_descriptors_are_not_limited() -> None:
    d = Decider(RULES)
    hits = d.hits(DOMAIN, [desc("shop/api/gone"), [("other", "x")]], T)
    assert hits == [None, None]
    assert d.hits("another-domain", [desc(BY_KEY.id)], T) == [None]
    answer = d.answer(hits, [], T)
    assert not answer.over and all(s.rule is None for s in answer.statuses)


@pytest.mark.parametrize(("mode", "over"), [("open", False), ("closed", True)])
def test_failure_modes(mode: str, over: bool) -> None:
    d = Decider(RuleSet.of("1", [BY_KEY], mode))  # type: ignore[arg-type]
    hits = d.hits(DOMAIN, [desc(BY_KEY.id, "k"), desc("unknown")], T)
    answer = d.failed(hits, T)
    assert answer.over is over
    assert answer.statuses[1].over is False  # an unknown rule is never refused
    # --failure-mode wins over the rules' (the Mesh's)
    flipped = Decider(d.rules, "open" if over else "closed")
    assert flipped.failed(hits, T).over is not over
    # no rules yet: every descriptor by the failure mode
    assert Decider(None, mode).failed([None], T).over is over  # type: ignore[arg-type]


def test_the_rules_document_round_trips_and_names_bad_fields() -> None:
    assert parse_rules(rules_document(RULES), "x") == RULES
    with pytest.raises(Exception, match=r"rules\[0\]\.unit is 'week'"):
        parse_rules({"rules": [{"id": "a/b/c", "requests": 1, "unit": "week"}]}, "x")
    with pytest.raises(Exception, match="failureMode is 'maybe'"):
        parse_rules({"failureMode": "maybe"}, "x")


@pytest.mark.asyncio
async def test_the_servicer_counts_in_memory_and_answers_over_limit() -> None:
    from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
    from envoy.service.ratelimit.v3 import rls_pb2

    servicer = RateLimitServicer(Decider(RULES), MemoryCounters(), clock=lambda: T)
    entry = ratelimit_pb2.RateLimitDescriptor.Entry
    request = rls_pb2.RateLimitRequest(
        domain=DOMAIN,
        descriptors=[
            ratelimit_pb2.RateLimitDescriptor(
                entries=[entry(key=RULE_KEY, value=BY_KEY.id), entry(key="key", value="k")]
            )
        ],
    )
    codes = [(await servicer.check(request)).overall_code for _ in range(5)]
    OK, OVER = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT
    assert codes == [OK, OK, OK, OVER, OVER]
    last = await servicer.check(request)
    [status] = last.statuses
    assert status.current_limit.requests_per_unit == 3
    assert status.current_limit.unit == rls_pb2.RateLimitResponse.RateLimit.SECOND
    assert (status.limit_remaining, status.duration_until_reset.seconds) == (0, 1)
    assert servicer.stats.checks == 6 and servicer.stats.over_limit == 3
