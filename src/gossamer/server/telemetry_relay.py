"""Each proxy's access-log counters, relayed from the xDS port to the telemetry service
(docs/telemetry.md, "Loss").

Envoy's stat sink is bootstrap-level and only takes a static cluster, and the one static
gRPC cluster every bootstrap has is ``gossamer-xds``: the control plane (plaintext or
mTLS, as ADS). So the xDS server also answers ``MetricsService/Export``
(``translate.stat_sink``) and forwards each export as it is to the telemetry service's gRPC
address (the supervised child's, or ``--telemetry HOST:PORT``). With telemetry ``off`` an
export is answered and dropped; when the service does not answer, the proxy is told
UNAVAILABLE and the next export (cumulative counters, every 10 s) carries the same news.

**Who may export.** Each export names its proxy in every resource's ``gossamer.node_id``
attribute (``translate.stat_sink``); the sender must be allowed to speak for each node by
the rule ADS applies to a stream subscribing as it (``authorize``: ``server.xds_identity``,
``xds.auth.check_node``): on the mTLS port the client certificate of the node's own
service, issued to the agent that registered it; on the plaintext port (``--xds-tls
optional``) what ADS takes there. Otherwise a client reaching the xDS port could fake a
node's counters, and flag false gaps. A refused export (or one naming no node) is answered
PERMISSION_DENIED, counted in ``refused``, and goes nowhere.
"""

from __future__ import annotations

import logging

import grpc
from envoy.config.core.v3 import base_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from gossamer.errors import GossamerError
from gossamer.node import parse_node
from gossamer.translate.stat_sink import NODE_ATTRIBUTE
from gossamer.translate.telemetry import TelemetryService
from gossamer.xds.auth import Peer, peer_of
from gossamer.xds.server import Authorizer, anyone

log = logging.getLogger(__name__)

#: how long one forwarded export may take (waiting for the service to be reachable included)
FORWARD_TIMEOUT_S = 5.0
#: reconnecting to a restarted service: gRPC's default back-off grows to two minutes, and
#: an export that finds the channel backing off fails at once, so a service restarted
#: after a few seconds was not reached for tens of seconds (found by ``bench/chaos.py``)
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class MetricsRelay(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    def __init__(self, authorize: Authorizer = anyone) -> None:
        #: may this peer speak for this proxy? (the xDS server's ADS rule)
        self.authorize = authorize
        #: where exports go (None: telemetry off, or not known yet: dropped)
        self.target: TelemetryService | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stub: metrics_service_pb2_grpc.MetricsServiceStub | None = None
        self.forwarded = 0
        self.failed = 0
        self.dropped = 0
        #: exports refused: the sender may not speak for a node they name (or names none)
        self.refused = 0

    def add_to(self, server: grpc.aio.Server) -> None:
        """Serve ``Export`` on ``server`` (``XdsServer.services``)."""
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, server)

    def _client(self, target: TelemetryService) -> metrics_service_pb2_grpc.MetricsServiceStub:
        if self._stub is None:
            host = f"[{target.host}]" if ":" in target.host else target.host
            self._channel = grpc.aio.insecure_channel(
                f"{host}:{target.port}", options=RECONNECT_OPTIONS
            )
            self._stub = metrics_service_pb2_grpc.MetricsServiceStub(self._channel)
        return self._stub

    async def Export(  # the protocol's name
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        why = self._refusal(request, peer_of(context.auth_context()))
        if why is not None:
            self.refused += 1
            log.warning("telemetry: an export refused (%s): %s", context.peer(), why)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
        target = self.target
        if target is None:
            self.dropped += 1
            return metrics_service_pb2.ExportMetricsServiceResponse()
        try:
            await self._client(target).Export(
                request, timeout=FORWARD_TIMEOUT_S, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as e:
            self.failed += 1
            log.debug("telemetry: relaying a proxy's counters failed: %s", e.details())
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"the telemetry service at {target.host}:{target.port} did not take the "
                f"export ({e.code().name})",
            )
        self.forwarded += 1
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def _refusal(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, peer: Peer
    ) -> str | None:
        """Why ``peer`` may not send ``request`` (None: it may): every resource must name
        a node the peer may subscribe to xDS as."""
        if not request.resource_metrics:
            return None  # nothing relayed in anyone's name
        for metrics in request.resource_metrics:
            named = [
                a.value.string_value
                for a in metrics.resource.attributes
                if a.key == NODE_ATTRIBUTE and a.value.HasField("string_value")
            ]
            if len(named) != 1:
                return (
                    f"a stat-sink export must name its proxy in the resource attribute "
                    f"{NODE_ATTRIBUTE!r} of each resource (once); found {len(named)}: "
                    "generate the bootstrap with gossamer.translate.bootstrap.ads_bootstrap"
                )
            try:
                self.authorize(parse_node(base_pb2.Node(id=named[0])), peer)
            except GossamerError as e:  # PermissionDeniedError, or a bad node id
                return f"a stat-sink export for {named[0]}: {e}"
        return None

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None
