"""The rate-limit service's decisions, without I/O: which counters a request touches, and
what to answer once they are counted.

Windows are fixed and aligned to the epoch (a ``minute`` window starts at :00 UTC), so
every ``ratelimit serve`` sharing one Redis counts a request in the same window without
talking to the others (clocks are assumed in sync to well under a window). A counter is
keyed by (rule id, key value, window start); it lives until its window ends (plus a
little for clock skew) and is then dropped, never reset.

A descriptor the service does not know (another domain, no ``gossamer-rule`` entry, a
rule removed meanwhile) is answered ``OK`` without a limit, like Envoy's own reference
service. When the counters cannot be reached, or no rules were ever loaded, the failure
mode decides: ``open`` answers ``OK``, ``closed`` answers ``OVER_LIMIT`` for every
descriptor of a known rule (for all of them, before rules are loaded).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from gossamer.model.rate_limits import UNIT_SECONDS, GlobalRule

#: the descriptor entry naming the rule (``translate.global_rate_limit.RULE_KEY``)
RULE_KEY = "gossamer-rule"
#: the protocol domain of Gossamer's descriptors (``translate.global_rate_limit.DOMAIN``)
DOMAIN = "gossamer"
#: seconds a counter outlives its window (clock skew between instances)
SKEW_S = 2
FailureMode = Literal["open", "closed"]
#: one descriptor as sent: its (key, value) entries in order
Descriptor = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules the service decides with, as the control plane (or a file) gave them."""

    version: str
    rules: Mapping[str, GlobalRule] = field(default_factory=dict)
    #: ``Mesh.spec.rateLimit.failureMode``, unless ``--failure-mode`` overrides it
    failure_mode: FailureMode = "open"

    @classmethod
    def of(cls, version: str, rules: Iterable[GlobalRule], failure_mode: FailureMode) -> RuleSet:
        return cls(version, {r.id: r for r in rules}, failure_mode)


@dataclass(frozen=True, slots=True)
class Hit:
    """One counter a request adds to: ``key`` (the counter's name), for ``rule``, in the
    window ending at ``window_end`` (epoch seconds)."""

    key: str
    rule: GlobalRule
    window_end: int

    @property
    def ttl(self) -> int:
        return UNIT_SECONDS[self.rule.unit] + SKEW_S


@dataclass(frozen=True, slots=True)
class Status:
    """The answer for one descriptor (``RateLimitResponse.DescriptorStatus``)."""

    over: bool
    #: the limit that applied (None: not limited)
    rule: GlobalRule | None = None
    remaining: int = 0
    #: whole seconds until the window ends
    reset_s: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    statuses: tuple[Status, ...]

    @property
    def over(self) -> bool:
        return any(s.over for s in self.statuses)


def counter_key(rule: str, value: str, window_start: int) -> str:
    """The counter's name (also in Redis): the rule readable, the key value hashed (it may
    be long or hold any bytes)."""
    digest = hashlib.blake2b(value.encode(), digest_size=12).hexdigest()
    return f"gossamer:rl:{rule}:{window_start}:{digest}"


def _key_value(entries: Descriptor) -> str:
    # Every entry after the rule's is the key's (one at most as Gossamer translates);
    # none: the rule's one budget, or a request without the keyed part.
    return "\x1f".join(v for _, v in entries[1:])


class Decider:
    """Decisions for one ``RuleSet`` (replace ``rules`` when they change)."""

    def __init__(self, rules: RuleSet | None = None, failure_mode: FailureMode | None = None):
        self.rules = rules
        #: ``--failure-mode``: wins over the rules' own
        self.override = failure_mode

    @property
    def failure_mode(self) -> FailureMode:
        if self.override is not None:
            return self.override
        return self.rules.failure_mode if self.rules is not None else "open"

    def rule_of(self, domain: str, entries: Descriptor) -> GlobalRule | None:
        if self.rules is None or domain != DOMAIN or not entries or entries[0][0] != RULE_KEY:
            return None
        return self.rules.rules.get(entries[0][1])

    def hits(self, domain: str, descriptors: Sequence[Descriptor], now: float) -> list[Hit | None]:
        """The counter each descriptor adds to (None: not limited)."""
        out: list[Hit | None] = []
        for entries in descriptors:
            rule = self.rule_of(domain, entries)
            if rule is None:
                out.append(None)
                continue
            unit = UNIT_SECONDS[rule.unit]
            start = int(now) - int(now) % unit
            out.append(Hit(counter_key(rule.id, _key_value(entries), start), rule, start + unit))
        return out

    def answer(self, hits: Sequence[Hit | None], counts: Sequence[int], now: float) -> Answer:
        """The answer once each hit's counter reads ``counts`` (after this request's
        addition), in the order of ``hits`` (None hits take no count)."""
        it = iter(counts)
        statuses: list[Status] = []
        for hit in hits:
            if hit is None:
                statuses.append(Status(over=False))
                continue
            count = next(it)
            limit = hit.rule.requests
            statuses.append(
                Status(
                    over=count > limit,
                    rule=hit.rule,
                    remaining=max(0, limit - count),
                    reset_s=max(1, math.ceil(hit.window_end - now)),
                )
            )
        return Answer(tuple(statuses))

    def failed(self, hits: Sequence[Hit | None], now: float) -> Answer:
        """The answer when the counters did not answer (or no rules are loaded yet)."""
        closed = self.failure_mode == "closed"
        if self.rules is None:
            return Answer(tuple(Status(over=closed) for _ in hits))
        statuses = []
        for hit in hits:
            if hit is None or not closed:
                statuses.append(Status(over=False))
            else:
                reset = max(1, math.ceil(hit.window_end - now))
                statuses.append(Status(over=True, rule=hit.rule, remaining=0, reset_s=reset))
        return Answer(tuple(statuses))
