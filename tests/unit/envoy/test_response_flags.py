"""The response-flag table (every flag of Envoy 1.40, once) and the counters that count
them (``envoy.flag_stats``)."""

from __future__ import annotations

from gossamer.envoy.flag_stats import COUNTERS, Prefixes, flag_counts
from gossamer.envoy.response_flags import BY_CODE, FLAGS, explain, flag

#: Envoy 1.40's CoreResponseFlag, in its order (source/common/stream_info/utility.h)
ENVOY_1_40 = [
    "LH",
    "UH",
    "UT",
    "LR",
    "UR",
    "UF",
    "UC",
    "UO",
    "NR",
    "DI",
    "FI",
    "RL",
    "UAEX",
    "RLSE",
    "DC",
    "URX",
    "SI",
    "IH",
    "DPE",
    "UMSDR",
    "RFCF",
    "NFCF",
    "DT",
    "UPE",
    "NC",
    "OM",
    "DF",
    "DO",
    "DR",
    "UDO",
]

CLUSTER = "cluster.outbound|default/reviews|"
LISTENER = "http.outbound|127.0.0.2:15001."


def test_every_flag_of_envoy_1_40_once_in_envoys_order_with_a_one_line_meaning() -> None:
    assert [f.code for f in FLAGS] == ENVOY_1_40
    assert len({f.name for f in FLAGS}) == len(FLAGS)
    assert all(f.meaning and "\n" not in f.meaning for f in FLAGS)
    assert flag("UO").explained().startswith("UO: circuit breaker open")
    assert flag("NR").explained().startswith("NR: no route")
    assert flag("UH").explained().startswith("UH: no healthy upstream")
    assert flag("URX").explained().startswith("URX: retries exhausted")


def test_explain_reads_an_access_log_field() -> None:
    assert explain("-") == []
    assert explain("UO,URX") == [BY_CODE["UO"].explained(), BY_CODE["URX"].explained()]
    assert explain("ZZ") == ["ZZ: not a response flag of Envoy 1.40"]


def test_counters_name_only_known_flags() -> None:
    assert {c.flag for c in COUNTERS} <= set(BY_CODE)


def test_flag_counts_takes_the_services_clusters_and_its_listener() -> None:
    stats = {
        f"{CLUSTER}http.upstream_rq_pending_overflow": 7,
        f"{CLUSTER}http|version=v2.upstream_rq_pending_overflow": 1,
        f"{CLUSTER}http.upstream_rq_timeout": 0,
        # another service's cluster: not counted
        "cluster.outbound|default/ratings|http.upstream_rq_pending_overflow": 100,
        f"{LISTENER}fault.aborts_injected": 20,
        "http.outbound|127.0.0.2:15002.fault.aborts_injected": 50,
        "local_rate_limit.http_local_rate_limit.rate_limited": 3,
    }
    where = Prefixes((CLUSTER,), {LISTENER: False})
    counted = {c.flag: c for c in flag_counts(stats, where)}
    assert list(counted) == ["UO", "FI", "RL"]  # the table's order, zero counts left out
    assert counted["UO"].count == 8 and not counted["UO"].shared
    assert counted["FI"].count == 20 and counted["FI"].counters == {
        f"{LISTENER}fault.aborts_injected": 20
    }
    assert counted["RL"].shared  # a proxy-wide filter: maybe other services' requests
    assert "local_rate_limit.http_local_rate_limit.rate_limited" in where.all()
