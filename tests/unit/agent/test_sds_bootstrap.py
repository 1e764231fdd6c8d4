"""The sidecar bootstrap's ``gossamer-sds`` cluster: HTTP/2 over the agent's Unix socket."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

from gossamer.envoy.validate import validate_config_sync
from gossamer.errors import ValidationError
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.translate.names import SDS_CLUSTER
from gossamer.types import ProxyIdentity

WEB = ProxyIdentity("sidecar", "default", "web-1", service="web", host="h1")
XDS, ADMIN = ("127.0.0.1", 18000), ("127.0.0.1", 15000)


def test_the_sds_cluster_speaks_http2_over_the_socket_and_validates() -> None:
    socket = Path("/var/lib/gossamer/agent/sds.sock")
    bootstrap = ads_bootstrap(WEB, XDS, ADMIN, sds_socket=socket)
    (sds,) = [c for c in bootstrap.static_resources.clusters if c.name == SDS_CLUSTER]
    (endpoint,) = sds.load_assignment.endpoints[0].lb_endpoints
    assert endpoint.endpoint.address.pipe.path == str(socket)
    options = http_protocol_options_pb2.HttpProtocolOptions()
    (packed,) = sds.typed_extension_protocol_options.values()
    packed.Unpack(options)
    assert options.explicit_http_config.HasField("http2_protocol_options")
    validate_config_sync(bootstrap)  # (deprecated fields fail it)


def test_without_a_socket_there_is_no_sds_cluster() -> None:
    bootstrap = ads_bootstrap(WEB, XDS, ADMIN)
    assert SDS_CLUSTER not in {c.name for c in bootstrap.static_resources.clusters}


def test_a_relative_socket_path_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"sds_socket.*absolute"):
        ads_bootstrap(WEB, XDS, ADMIN, sds_socket=Path("state/sds.sock"))
