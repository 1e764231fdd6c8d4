"""Helpers for the SDS tests: the mesh CA, a static Envoy bootstrap whose
listener takes its certificate and trust bundle from the agent's SDS server, and a TLS
client that reports the certificate it was shown."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from gossamer.ca.authority import CertificateAuthority
from gossamer.ca.keys import csr_for, key_pem, new_key
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.translate.names import IDENTITY_SECRET, SDS_CLUSTER, TRUST_BUNDLE_SECRET
from gossamer.types import ProxyIdentity

PROXY = ProxyIdentity("sidecar", "default", "web-1", service="web", host="h1")


@dataclass
class MeshCa:
    """The mesh CA (``gossamer.ca``) and the host side of a request: key, CSR, signature."""

    ca: CertificateAuthority

    @classmethod
    def create(cls, directory: Path) -> MeshCa:
        return cls(CertificateAuthority.load_or_create(directory, "shop.local"))

    @property
    def pem(self) -> bytes:
        return self.ca.trust_bundle_pem()

    def issue(self, uri: str) -> tuple[bytes, bytes, int]:
        """(chain PEM, key PEM, serial) of a new certificate for ``uri``."""
        key = new_key()
        issued = self.ca.sign(csr_for(key, None), spiffe_id=uri, ttl=timedelta(hours=1))
        return issued.chain_pem, key_pem(key), issued.serial


def sds_config() -> config_source_pb2.ConfigSource:
    source = config_source_pb2.ConfigSource(resource_api_version=config_source_pb2.V3)
    api = source.api_config_source
    api.api_type = config_source_pb2.ApiConfigSource.GRPC
    api.transport_api_version = config_source_pb2.V3
    api.grpc_services.add().envoy_grpc.cluster_name = SDS_CLUSTER
    return source


def tls_bootstrap(sds_socket: Path, port: int) -> bootstrap_pb2.Bootstrap:
    """The agent's bootstrap (node, ``gossamer-sds`` cluster) made static: one mTLS
    listener on ``port`` whose certificate and trusted CAs come over SDS, answering 200."""
    agent = ads_bootstrap(PROXY, ("127.0.0.1", 1), ("127.0.0.1", 0), sds_socket=sds_socket)
    bootstrap = bootstrap_pb2.Bootstrap()
    bootstrap.node.CopyFrom(agent.node)
    bootstrap.static_resources.clusters.extend(
        c for c in agent.static_resources.clusters if c.name == SDS_CLUSTER
    )
    context = tls_pb2.DownstreamTlsContext()
    context.require_client_certificate.value = True
    common = context.common_tls_context
    common.tls_params.tls_minimum_protocol_version = common_pb2.TlsParameters.TLSv1_2
    identity = common.tls_certificate_sds_secret_configs.add(name=IDENTITY_SECRET)
    identity.sds_config.CopyFrom(sds_config())
    trust = common.validation_context_sds_secret_config
    trust.name = TRUST_BUNDLE_SECRET
    trust.sds_config.CopyFrom(sds_config())

    hcm = hcm_pb2.HttpConnectionManager(stat_prefix="tls")
    route = hcm.route_config.virtual_hosts.add(name="all", domains=["*"]).routes.add()
    route.match.prefix = "/"
    route.direct_response.status = 200
    route.direct_response.body.inline_string = "ok"
    router = hcm.http_filters.add(name="envoy.filters.http.router")
    router.typed_config.Pack(router_pb2.Router())

    listener = bootstrap.static_resources.listeners.add(name="tls")
    listener.address.socket_address.address = "127.0.0.1"
    listener.address.socket_address.port_value = port
    listener.enable_reuse_port.value = False
    chain = listener.filter_chains.add()
    chain.filters.add(name="envoy.filters.network.http_connection_manager").typed_config.Pack(hcm)
    chain.transport_socket.name = "envoy.transport_sockets.tls"
    chain.transport_socket.typed_config.Pack(context)
    runtime = bootstrap.layered_runtime.layers.add(name="static")
    runtime.static_layer.update({"envoy.features.fail_on_any_deprecated_feature": True})
    return bootstrap


def client_context(ca: MeshCa, chain_pem: bytes, key_pem: bytes, tmp: Path) -> ssl.SSLContext:
    """A TLS client context presenting a mesh certificate and trusting ``ca`` (the server's
    certificate names a SPIFFE id, no host name: the test checks the URI SAN itself)."""
    ctx = ssl.create_default_context(cadata=ca.pem.decode())
    ctx.check_hostname = False
    (tmp / "client.pem").write_bytes(chain_pem)
    (tmp / "client.key").write_bytes(key_pem)
    ctx.load_cert_chain(tmp / "client.pem", tmp / "client.key")
    return ctx


def peer_certificate(der: bytes) -> tuple[int, list[str]]:
    """(serial, URI SANs) of a DER certificate."""
    cert = x509.load_der_x509_certificate(der)
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return cert.serial_number, uris.get_values_for_type(x509.UniformResourceIdentifier)
