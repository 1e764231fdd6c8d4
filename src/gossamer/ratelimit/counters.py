"""Where the rate-limit service counts: in its own memory (one instance) or in Redis
(several instances sharing limits).

Redis: each check is one round trip, a ``MULTI`` of ``INCRBY key hits`` + ``EXPIRE key
ttl`` per counter, so a counter and its expiry are set together and every instance sees
one count. A Redis that does not answer within ``timeout`` (stopped, unreachable, slow)
raises ``CountersUnavailableError``; the service then answers by its failure mode, and
the client reconnects on the next check once Redis is back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gossamer.errors import ConfigError, CountersUnavailableError

#: the default deadline of one Redis round trip (below a proxy's 100 ms wait for the
#: service, so the service's own failure mode answers first)
REDIS_TIMEOUT_S = 0.05
#: memory counters: drop expired ones at most this often
SWEEP_EVERY_S = 1.0


class Counters(Protocol):
    async def add(self, keys: Sequence[tuple[str, int]], hits: int) -> list[int]:
        """Add ``hits`` to each (counter, ttl seconds) and return their new values;
        ``CountersUnavailableError`` if that cannot be done now."""
        ...

    async def close(self) -> None: ...


class MemoryCounters:
    """Counters of one process (no sharing); expired ones are swept as time passes."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._swept = time.monotonic()

    def __len__(self) -> int:
        return len(self._counts)

    async def add(self, keys: Sequence[tuple[str, int]], hits: int) -> list[int]:
        now = time.monotonic()
        if now - self._swept > SWEEP_EVERY_S:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            self._swept = now
        out = []
        for key, ttl in keys:
            count, expires = self._counts.get(key, (0, 0.0))
            if expires <= now:
                count, expires = 0, now + ttl
            self._counts[key] = (count + hits, expires)
            out.append(count + hits)
        return out

    async def close(self) -> None:
        self._counts.clear()


class RedisCounters:
    """Counters in Redis at ``url`` (``redis://host:port/db``), shared by every service
    instance using it."""

    def __init__(self, url: str, timeout: float = REDIS_TIMEOUT_S) -> None:
        try:
            self._redis = aioredis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry_on_timeout=False,
                health_check_interval=0,
            )
        except ValueError as e:
            raise ConfigError(
                f"--redis: {url!r} is not a Redis URL ({e}); write e.g. redis://127.0.0.1:6379/0"
            ) from None
        self.url = url

    async def add(self, keys: Sequence[tuple[str, int]], hits: int) -> list[int]:
        if not keys:
            return []
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key, ttl in keys:
                    pipe.incrby(key, hits)
                    pipe.expire(key, ttl)
                results = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as e:
            raise CountersUnavailableError(
                f"Redis at {self.url} did not answer ({type(e).__name__}: {e}); "
                "answering by the failure mode until it does"
            ) from None
        return [int(r) for r in results[::2]]

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()
