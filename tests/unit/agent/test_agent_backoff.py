import random

import pytest

from gossamer.agent.backoff import Backoff
from gossamer.errors import ConfigError


def test_grows_to_the_cap_and_resets() -> None:
    b = Backoff(initial=0.5, maximum=4.0, factor=2.0, jitter=0.0)
    assert [b.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next() == 0.5


def test_jitter_stays_below_the_base() -> None:
    b = Backoff(initial=1.0, maximum=1.0, jitter=0.5, rng=random.Random(7))
    delays = [b.next() for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 100


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"initial": 5, "maximum": 1}, {"factor": 0.5}, {"jitter": 1.0}]
)
def test_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Backoff(**kwargs)  # type: ignore[arg-type]
