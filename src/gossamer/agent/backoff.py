"""Exponential back-off with jitter, for retrying transient failures and restarting Envoy."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from gossamer.errors import ConfigError


@dataclass
class Backoff:
    """``next()`` gives the delay before the next attempt: ``initial * factor**n`` capped at
    ``maximum``, each scaled by a random factor in ``[1 - jitter, 1]``; ``reset()`` after a
    success starts over. ``rng`` is for tests."""

    initial: float = 0.2
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ConfigError(
                f"Backoff: need 0 < initial <= maximum, got {self.initial}, {self.maximum}"
            )
        if self.factor < 1:
            raise ConfigError(f"Backoff: factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"Backoff: jitter must be in [0, 1), got {self.jitter}")

    def next(self) -> float:
        """The delay (seconds) before the next attempt; counts the attempt."""
        base = min(self.maximum, self.initial * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        return base * (1 - self.jitter * self.rng.random())

    def reset(self) -> None:
        self.attempts = 0
