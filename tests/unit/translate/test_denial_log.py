"""The denial log: a TLS-capable sidecar's inbound HCM sends what RBAC denied (or would) to
its agent over ``gossamer-sds``, filtered on the RBAC filter's dynamic metadata."""

from __future__ import annotations

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from shop import shop

from gossamer.translate.denial_log import (
    DENIAL_LOG_NAME,
    HTTP_GRPC_ACCESS_LOG,
    denial_access_log,
)
from gossamer.translate.names import SDS_CLUSTER
from gossamer.translate.proxy import Translator
from gossamer.translate.tls import TlsState
from gossamer.types import ProxyIdentity


def _inbound_hcm(capable: frozenset[str]) -> hcm_pb2.HttpConnectionManager:
    res = Translator().proxy(
        shop(), ProxyIdentity("sidecar", "default", "reviews-1"), TlsState(capable)
    )
    listener = res.listeners["inbound|http"]
    out = hcm_pb2.HttpConnectionManager()
    assert listener.filter_chains[-1].filters[-1].typed_config.Unpack(out)
    return out


def test_a_sidecar_that_gets_secrets_logs_denials_to_its_agent() -> None:
    hcm = _inbound_hcm(frozenset({"sidecar~default~reviews-1"}))
    [log] = [a for a in hcm.access_log if a.name == HTTP_GRPC_ACCESS_LOG]
    assert log == denial_access_log()
    config = als_pb2.HttpGrpcAccessLogConfig()
    assert log.typed_config.Unpack(config)
    common = config.common_config
    assert common.log_name == DENIAL_LOG_NAME
    assert common.grpc_service.envoy_grpc.cluster_name == SDS_CLUSTER


def test_only_rbac_denials_and_shadow_denials_pass_the_filter() -> None:
    f = denial_access_log().filter
    keys = []
    for sub in f.or_filter.filters:
        m = sub.metadata_filter
        assert m.matcher.filter == "envoy.filters.http.rbac"
        assert m.matcher.value.string_match.exact == "denied"
        assert m.match_if_key_not_found.value is False
        keys += [p.key for p in m.matcher.path]
    assert keys == ["enforced_engine_result", "shadow_engine_result"]
    assert isinstance(f, accesslog_pb2.AccessLogFilter)


def test_a_sidecar_without_the_agents_socket_gets_no_denial_log() -> None:
    # its bootstrap has no gossamer-sds cluster: a log to it would be refused
    hcm = _inbound_hcm(frozenset())
    assert [a.name for a in hcm.access_log if a.name == HTTP_GRPC_ACCESS_LOG] == []
