"""Small protobuf builders every translator uses."""

from __future__ import annotations

from datetime import timedelta

from envoy.config.core.v3 import address_pb2, config_source_pb2, protocol_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, duration_pb2, message, struct_pb2

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def any_of(msg: message.Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(msg, deterministic=True)
    return out


def duration(value: timedelta) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromTimedelta(value)
    return out


def socket_address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=address, port_value=port)
    )


def ads_source() -> config_source_pb2.ConfigSource:
    """Resources fetched over the ADS stream the bootstrap configured."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def struct(values: dict[str, str]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


def upstream_protocol(*, http2: bool, idle_timeout: timedelta) -> dict[str, any_pb2.Any]:
    """``typed_extension_protocol_options`` for a cluster speaking HTTP/1.1 or HTTP/2."""
    explicit = http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig()
    if http2:
        explicit.http2_protocol_options.CopyFrom(protocol_pb2.Http2ProtocolOptions())
    else:
        explicit.http_protocol_options.CopyFrom(protocol_pb2.Http1ProtocolOptions())
    opts = http_protocol_options_pb2.HttpProtocolOptions(
        explicit_http_config=explicit,
        common_http_protocol_options=protocol_pb2.HttpProtocolOptions(
            idle_timeout=duration(idle_timeout)
        ),
    )
    return {HTTP_PROTOCOL_OPTIONS: any_of(opts)}
