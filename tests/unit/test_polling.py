"""The one back-off: delays grow to the cap, jitter only shortens them, a reset starts over;
bad settings are refused. Nothing here sleeps."""

from __future__ import annotations

import random

import pytest

from gossamer.errors import ConfigError
from gossamer.polling import Backoff


def test_grows_to_the_cap_and_resets() -> None:
    retries = Backoff(initial=0.5, maximum=4.0, factor=2.0, jitter=0.0).retries()
    assert [retries.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert retries.attempts == 6
    retries.reset()
    assert retries.next() == 0.5


def test_the_delay_of_a_huge_attempt_is_the_cap() -> None:
    assert Backoff(initial=0.5, maximum=4.0, jitter=0.0).delay(10_000) == 4.0


def test_jitter_stays_below_the_base() -> None:
    retries = Backoff(initial=1.0, maximum=1.0, jitter=0.5).retries(random.Random(7))
    delays = [retries.next() for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 100


def test_each_loop_counts_its_own_attempts() -> None:
    policy = Backoff(initial=1.0, maximum=8.0, jitter=0.0)
    one, two = policy.retries(), policy.retries()
    one.next(), one.next()
    assert (one.next(), two.next()) == (4.0, 1.0)


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"initial": 5, "maximum": 1}, {"factor": 0.5}, {"jitter": 1.0}]
)
def test_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Backoff(**kwargs)  # type: ignore[arg-type]
