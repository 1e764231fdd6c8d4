"""``gossamer ratelimit serve``: the rate-limit service's process.

Its rules come from the control plane (``--server``, long-polled with a read-only operator
token; the control plane gives its supervised child a token of its own) or from a file
(``--rules``). Counters live in memory, or with ``--redis`` in Redis, which is how several
processes (on one host for more cores, or on several hosts) share limits: each answers
checks on its own, all count in the same windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from envoy.service.ratelimit.v3 import rls_pb2_grpc

from gossamer.errors import ConfigError
from gossamer.ratelimit.counters import REDIS_TIMEOUT_S, Counters, MemoryCounters, RedisCounters
from gossamer.ratelimit.decision import Decider, FailureMode, RuleSet
from gossamer.ratelimit.rules import follow_control_plane, load_rules_file
from gossamer.ratelimit.service import RateLimitServicer

log = logging.getLogger(__name__)

#: seconds in-flight checks get to finish at shutdown
STOP_GRACE_S = 1.0


@dataclass(frozen=True)
class ServeSettings:
    listen: tuple[str, int]
    #: ``redis://host:port/db``; None: counters in this process's memory
    redis: str | None = None
    redis_timeout: float = REDIS_TIMEOUT_S
    #: overrides the failure mode the rules carry (the Mesh's)
    failure_mode: FailureMode | None = None
    rules_file: Path | None = None
    #: the control plane's API, and the token to read the rules with
    server: str | None = None
    token: str | None = None
    ca_file: Path | None = None

    def check(self) -> None:
        if (self.rules_file is None) == (self.server is None):
            raise ConfigError(
                "give the rules' source: --server URL (the control plane; with --token) or "
                "--rules FILE, not both"
            )
        if self.server is not None and not self.token:
            raise ConfigError(
                "--server needs --token (or GOSSAMER_TOKEN): a read-only operator token is "
                "enough (`gossamer token create --operator --read-only`)"
            )


def open_counters(settings: ServeSettings) -> Counters:
    if settings.redis is None:
        return MemoryCounters()
    return RedisCounters(settings.redis, settings.redis_timeout)


async def serve(
    settings: ServeSettings,
    stop: asyncio.Event,
    on_listening: Callable[[str, int], None] | None = None,
) -> RateLimitServicer:
    """Serve until ``stop`` is set; returns the servicer (its counts) after shutdown."""
    settings.check()
    rules: RuleSet | None = None
    if settings.rules_file is not None:
        rules = await asyncio.to_thread(load_rules_file, settings.rules_file)
    decider = Decider(rules, settings.failure_mode)
    counters = open_counters(settings)
    servicer = RateLimitServicer(decider, counters)
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    rls_pb2_grpc.add_RateLimitServiceServicer_to_server(servicer, server)
    host, port = settings.listen
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(target)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise ConfigError(f"--listen: cannot listen on {target}; is the port taken?")
    await server.start()
    try:
        if on_listening is not None:
            on_listening(host, bound)

        def take(new: RuleSet) -> None:
            decider.rules = new

        async with asyncio.TaskGroup() as tg:
            follower = None
            if settings.server is not None:
                assert settings.token is not None
                follower = tg.create_task(
                    follow_control_plane(
                        settings.server, settings.token, take, ca_file=settings.ca_file
                    )
                )
            await stop.wait()
            if follower is not None:
                follower.cancel()
    finally:
        await server.stop(STOP_GRACE_S)
        with contextlib.suppress(Exception):
            await counters.close()
    return servicer
