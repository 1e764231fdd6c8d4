"""Settings of the control plane's child services, checked before anything is opened.

``create_app`` calls ``check_settings`` first: a wrong ``--ratelimit``,
``--ratelimit-listen``, ``--ratelimit-redis``, ``--authz-service``, ``--authz-listen``,
``--telemetry``, ``--telemetry-listen`` or ``--telemetry-http`` is refused naming the
flag (``ConfigError``) before the data directory, the store or the CA is opened or
created, the same refusal the start itself would make later (the same
functions decide it, without reserving a port).
"""

from __future__ import annotations

from redis.connection import parse_url

from gossamer.errors import ConfigError
from gossamer.server import authz_child, rate_limit, telemetry_child


def check_redis_url(url: str) -> None:
    """``--ratelimit-redis`` names a Redis the child can parse (it is reached only later)."""
    try:
        parse_url(url)  # type: ignore[no-untyped-call]  # redis-py: what the child parses
    except ValueError as e:
        raise ConfigError(
            f"--ratelimit-redis: {url!r} is not a Redis URL ({e}); write e.g. "
            "redis://127.0.0.1:6379/0"
        ) from None


def check_settings(
    rate_limits: rate_limit.RateLimitSettings,
    authz: authz_child.AuthzSettings,
    telemetry: telemetry_child.TelemetrySettings | None = None,
) -> None:
    """Refuse (``ConfigError`` naming the flag) what the start would refuse once it had
    opened the data directory, the store and the CA."""
    rate_limit.service_address(rate_limits, reserve=False)
    if rate_limits.redis is not None:
        check_redis_url(rate_limits.redis)
    authz_child.service_address(authz, reserve=False)
    if telemetry is not None:
        telemetry_child.addresses(telemetry, reserve=False)
