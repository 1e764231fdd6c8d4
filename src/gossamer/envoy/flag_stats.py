"""Which of Envoy's own counters count responses given each response flag.

Until the mesh keeps access logs (the observability issue), ``gossamer describe`` reads
these counters from the callers' Envoys and reports them as response flags
(``gossamer.envoy.response_flags`` explains each). The counters are Envoy 1.40's, checked
against a running sidecar: per cluster (``cluster.<name>.<counter>``), per HTTP connection
manager (``http.<stat prefix>.<counter>``) or per proxy (filters whose stats have a fixed
prefix of their own).

A counter counts events, not final answers: a connect failure that a retry then hid is
counted under ``UF`` although the client got a 200. Counts are since the Envoy started.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from gossamer.envoy.response_flags import BY_CODE

Scope = Literal["cluster", "listener", "proxy"]


@dataclass(frozen=True, slots=True)
class FlagCounter:
    scope: Scope
    #: the counter's name after its scope's prefix
    counter: str
    flag: str


COUNTERS: tuple[FlagCounter, ...] = (
    FlagCounter("cluster", "upstream_rq_pending_overflow", "UO"),
    FlagCounter("cluster", "upstream_cx_none_healthy", "UH"),
    FlagCounter("cluster", "upstream_rq_timeout", "UT"),
    FlagCounter("cluster", "upstream_cx_connect_fail", "UF"),
    FlagCounter("cluster", "upstream_rq_retry_limit_exceeded", "URX"),
    FlagCounter("cluster", "upstream_rq_rx_reset", "UR"),
    FlagCounter("cluster", "upstream_rq_tx_reset", "LR"),
    FlagCounter("cluster", "upstream_cx_destroy_remote_with_active_rq", "UC"),
    FlagCounter("cluster", "upstream_rq_max_duration_reached", "UMSDR"),
    FlagCounter("cluster", "upstream_cx_protocol_error", "UPE"),
    FlagCounter("cluster", "ratelimit.over_limit", "RL"),
    FlagCounter("cluster", "ratelimit.error", "RLSE"),
    FlagCounter("cluster", "ext_authz.denied", "UAEX"),
    FlagCounter("listener", "no_route", "NR"),
    FlagCounter("listener", "no_cluster", "NC"),
    FlagCounter("listener", "fault.aborts_injected", "FI"),
    FlagCounter("listener", "fault.delays_injected", "DI"),
    FlagCounter("listener", "downstream_rq_idle_timeout", "SI"),
    FlagCounter("listener", "downstream_cx_destroy_remote_active_rq", "DC"),
    FlagCounter("listener", "downstream_rq_overload_close", "OM"),
    FlagCounter("listener", "downstream_cx_protocol_error", "DPE"),
    FlagCounter("listener", "downstream_rq_rx_reset", "DR"),
    FlagCounter("listener", "downstream_rq_max_duration_reached", "DT"),
    # the local rate-limit filter's stat prefix (``translate.rate_limit.STAT_PREFIX``)
    FlagCounter("proxy", "local_rate_limit.http_local_rate_limit.rate_limited", "RL"),
)

assert all(c.flag in BY_CODE for c in COUNTERS)


@dataclass(frozen=True, slots=True)
class Prefixes:
    """Where one proxy's counters about a service are: its clusters of the service
    (``cluster.outbound|ns/name|``), and the HTTP connection managers that route to it
    (``http.<listener>.``) with whether each serves other services too."""

    clusters: tuple[str, ...] = ()
    #: listener stat prefix -> shared (it routes to other services as well)
    listeners: Mapping[str, bool] = field(default_factory=dict)

    def all(self) -> list[str]:
        """Every stat-name prefix to ask the proxy's Envoy for (proxy-wide ones included)."""
        proxy = sorted({c.counter for c in COUNTERS if c.scope == "proxy"})
        return [*self.clusters, *self.listeners, *proxy]


@dataclass(frozen=True, slots=True)
class FlagCount:
    flag: str
    count: int
    #: counter name -> value
    counters: dict[str, int]
    #: some of it may be about other services (a shared listener, a proxy-wide filter)
    shared: bool


def flag_counts(stats: Mapping[str, int], where: Prefixes) -> list[FlagCount]:
    """The flags ``stats`` (an Envoy's counters by name) count about one service, in
    the table's order, only those counted at least once."""
    found: dict[str, tuple[dict[str, int], bool]] = {}

    def add(flag: str, name: str, shared: bool) -> None:
        value = stats.get(name, 0)
        if value > 0:
            counters, was_shared = found.setdefault(flag, ({}, False))
            counters[name] = value
            found[flag] = (counters, was_shared or shared)

    for c in COUNTERS:
        for name, shared in _names(c, stats, where):
            add(c.flag, name, shared)
    order = {code: i for i, code in enumerate(BY_CODE)}
    return [
        FlagCount(flag, sum(counters.values()), counters, shared)
        for flag, (counters, shared) in sorted(found.items(), key=lambda kv: order[kv[0]])
    ]


def _names(c: FlagCounter, stats: Mapping[str, int], where: Prefixes) -> Iterable[tuple[str, bool]]:
    if c.scope == "proxy":
        yield c.counter, True
    elif c.scope == "listener":
        for prefix, shared in where.listeners.items():
            yield f"{prefix}{c.counter}", shared
    else:
        suffix = f".{c.counter}"
        for name in stats:
            if name.endswith(suffix) and any(name.startswith(p) for p in where.clusters):
                # the rest between prefix and suffix is the cluster's own name part
                yield name, False
