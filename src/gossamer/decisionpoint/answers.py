"""Whole answers of the warm path: the ``CheckResponse`` (prebuilt, shared) and the verdict
of every request decided on the same facts, kept per graph version.

A check is decided on its caller, its end user's deciding facts (name and the attributes
its claims map to, or no token, or a token without ``iss``/``sub``), its method, the
service and the attribute its path reaches (``decision.decide_on``'s arguments): requests
equal on those get the same answer, whatever the rest of the path or the request id.

The answers belong to the policy they were decided on: asked with another policy (a new
graph version was assigned), the cache starts empty, so no answer outlives its graph (as
the decider's own caches, which a new version replaces whole). Bounded: emptied when full.
Safe to use from several threads: the (policy, answers) pair is swapped in one assignment.
"""

from __future__ import annotations

from typing import Generic, TypeVar

#: (service, caller, end user, its attributes, token?, method, deciding attribute)
AnswerKey = tuple[str, str, str, tuple[str, ...], bool, str, str | None]
#: answers kept per version at most
MAX_ANSWERS = 200_000

A = TypeVar("A")


class AnswerCache(Generic[A]):
    def __init__(self, limit: int = MAX_ANSWERS) -> None:
        self.limit = limit
        self._state: tuple[object, dict[AnswerKey, A]] = (None, {})

    def of(self, policy: object) -> dict[AnswerKey, A]:
        """The answers decided on ``policy`` (a fresh dict when it is not the one they
        were decided on: a new graph version)."""
        owner, answers = self._state
        if owner is not policy:
            answers = {}
            self._state = (policy, answers)
        elif len(answers) >= self.limit:
            answers.clear()
        return answers
