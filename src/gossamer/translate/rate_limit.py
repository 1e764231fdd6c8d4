"""Local rate limits: token buckets in each HCM's ``local_ratelimit`` filter, chosen by routes,
delivered over ECDS.

Envoy recreates a per-route ``local_ratelimit`` bucket whenever the route table holding it is
pushed (measured: 5 of 5 tokens back after an unrelated RDS edit), so a budget written on
the route would be refilled by any change to any rule of the table. Instead each
rate-limited rule is one *descriptor* of the filter itself, with its token bucket, and the
rule's Envoy routes only *emit* that descriptor (a route-level ``rate_limits`` action with a
``generic_key``). Pushing routes then never touches a bucket.

The filter's own config is not in the listener: the HCM names it (``filter_name``, one per
HCM) with ``config_discovery`` and the config is an ECDS resource of its own
(``extension_config``, a ``TypedExtensionConfig``). Adding, changing or removing a
``rateLimit`` changes that resource only: no listener is modified or drained. Envoy builds
the filter's buckets anew from a changed resource, so every bucket of that HCM starts full
again then (measured; docs/resources.md); a change elsewhere (routes, other HCMs' budgets)
leaves them. The listener waits for its filter config when it is new; were none to come,
it would start after Envoy's initial fetch timeout with ``default_config``: no budgets.

The filter is in every HCM from the start, holding no descriptor when no rule is limited,
so giving a first rule a limit changes the filter's ECDS resource and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from envoy.config.core.v3 import base_pb2, config_source_pb2, extension_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.v3 import http_status_pb2, percent_pb2, token_bucket_pb2
from google.protobuf import wrappers_pb2

from gossamer.model.route import Route, Rule
from gossamer.translate.common import ads_source, any_of, duration

LOCAL_RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit"
#: the descriptor key a rate-limited route emits; its value names the rule (``rule_id``)
DESCRIPTOR_KEY = "gossamer-rule"
#: the stage of the local filter's route actions (stage 0 is left to a global filter)
LOCAL_STAGE = 1
#: the filter's stats: ``http.<HCM stat prefix>.local_rate_limit.rate_limited`` etc.
STAT_PREFIX = "local_rate_limit"


@dataclass(frozen=True, order=True, slots=True)
class Bucket:
    """One rule's budget: a bucket of ``requests`` tokens that Envoy (1.40) refills
    continuously, one token every ``per / requests`` (measured; not whole every ``per``).

    ``shared``: the figure is shared by the proxies of the Envoy local cluster (a
    ``TrafficPolicy.rateLimit`` with ``scope: service``; ``translate.local_cluster``)."""

    rule: str
    requests: int
    per: timedelta
    shared: bool = False


def rule_id(route: Route, index: int, rule: Rule) -> str:
    """The descriptor value of a rule: ``ns/route/name`` when the rule has a ``name`` (so
    reordering rules keeps its bucket), else ``ns/route/#index``."""
    ns, name = route.ref
    return f"{ns}/{name}/{rule.name}" if rule.name else f"{ns}/{name}/#{index}"


def buckets(routes: Iterable[Route]) -> tuple[Bucket, ...]:
    """The budgets of ``routes``' locally rate-limited rules, in a stable order (global
    limits are the rate-limit service's: ``global_rate_limit``)."""
    out = {
        Bucket(rule_id(r, i, rule), rule.rateLimit.requests, rule.rateLimit.per)
        for r in routes
        for i, rule in enumerate(r.spec.rules)
        if rule.rateLimit is not None and not rule.rateLimit.global_
    }
    return tuple(sorted(out))


def route_rate_limit(rule: str) -> rc_pb2.RateLimit:
    """What a rule's routes carry: emit this rule's descriptor to the local filter."""
    action = rc_pb2.RateLimit.Action(
        generic_key=rc_pb2.RateLimit.Action.GenericKey(
            descriptor_key=DESCRIPTOR_KEY, descriptor_value=rule
        )
    )
    return rc_pb2.RateLimit(stage=wrappers_pb2.UInt32Value(value=LOCAL_STAGE), actions=[action])


def _token_bucket(requests: int, per: timedelta) -> token_bucket_pb2.TokenBucket:
    return token_bucket_pb2.TokenBucket(
        max_tokens=requests,
        tokens_per_fill=wrappers_pb2.UInt32Value(value=requests),
        fill_interval=duration(per),
    )


def _all() -> base_pb2.RuntimeFractionalPercent:
    return base_pb2.RuntimeFractionalPercent(
        default_value=percent_pb2.FractionalPercent(
            numerator=100, denominator=percent_pb2.FractionalPercent.HUNDRED
        )
    )


def local_rate_limit(held: Iterable[Bucket]) -> local_rate_limit_pb2.LocalRateLimit:
    """The filter's config: one descriptor (and bucket) per rule; requests whose route
    emits none are not limited (no default bucket). Over budget: 429 with
    ``x-ratelimit-*`` headers.

    With a ``shared`` bucket the filter sets ``local_cluster_rate_limit``, which divides
    *every* bucket of the filter among the local cluster's members: only the inbound
    filter of a sidecar holds one, and it holds nothing else."""
    config = local_rate_limit_pb2.LocalRateLimit(
        stat_prefix=STAT_PREFIX,
        status=http_status_pb2.HttpStatus(code=http_status_pb2.TooManyRequests),
        stage=LOCAL_STAGE,
        filter_enabled=_all(),
        filter_enforced=_all(),
        enable_x_ratelimit_headers=ratelimit_pb2.DRAFT_VERSION_03,
        # Only the route's own descriptors: a virtual host's rate_limits are not ours.
        vh_rate_limits=ratelimit_pb2.IGNORE,
        always_consume_default_token_bucket=wrappers_pb2.BoolValue(value=False),
    )
    held = tuple(held)
    if any(b.shared for b in held):
        config.local_cluster_rate_limit.SetInParent()
    for b in held:
        config.descriptors.add(
            entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=DESCRIPTOR_KEY, value=b.rule)],
            token_bucket=_token_bucket(b.requests, b.per),
        )
    return config


def filter_name(stat_prefix: str) -> str:
    """The name of an HCM's local rate-limit filter, which is also the name of its ECDS
    resource (``extension_config``); ``stat_prefix``: the HCM's (its listener's name, unique
    in a proxy)."""
    return f"{LOCAL_RATE_LIMIT_FILTER}|{stat_prefix}"


def http_filter(stat_prefix: str) -> hcm_pb2.HttpFilter:
    """The HCM's local rate-limit filter: its config comes over ECDS (``extension_config``),
    so a change of budgets changes no listener."""
    return hcm_pb2.HttpFilter(
        name=filter_name(stat_prefix),
        config_discovery=config_source_pb2.ExtensionConfigSource(
            config_source=ads_source(),
            # Used only if Envoy waited its initial fetch timeout in vain: no budgets.
            default_config=any_of(local_rate_limit(())),
            type_urls=[_TYPE_URL],
        ),
    )


def extension_config(
    stat_prefix: str, held: Iterable[Bucket]
) -> extension_pb2.TypedExtensionConfig:
    """The ECDS resource of an HCM's local rate-limit filter: one descriptor per bucket."""
    return extension_pb2.TypedExtensionConfig(
        name=filter_name(stat_prefix), typed_config=any_of(local_rate_limit(held))
    )


_TYPE_URL = "type.googleapis.com/" + local_rate_limit_pb2.LocalRateLimit.DESCRIPTOR.full_name
