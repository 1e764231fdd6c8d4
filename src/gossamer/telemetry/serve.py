"""``gossamer telemetry serve``: the telemetry service's process.

One event loop runs the gRPC listener (access logs, OTLP traces and each Envoy's
access-log counters for loss reconciliation, ``stat_sink``), the
HTTP query API (``telemetry.api``) and the flusher: every ``flush_interval_s`` the minutes
that closed (older than the previous minute: late entries still land in memory) and the
spans of the traces decided (``traces_sampling``) go to the store, then retention and the
disk cap apply. On SIGTERM/SIGINT the gRPC server stops taking streams,
then every open minute is flushed before the process exits: a clean restart loses nothing
that reached it (what Envoy could not send meanwhile, see docs/telemetry.md, "Loss").
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import uvicorn
from envoy.service.accesslog.v3 import als_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from gossamer.errors import ConfigError
from gossamer.telemetry.aggregate import Aggregator, Bucket, Key
from gossamer.telemetry.als import AccessLogServicer
from gossamer.telemetry.api import api_app
from gossamer.telemetry.otlp_export import OtlpExporter
from gossamer.telemetry.stat_sink import Gap, MetricsServicer, Reconciler
from gossamer.telemetry.stats_records import RequestStats
from gossamer.telemetry.store import Checkpoint, TelemetryStore, bucket_rows
from gossamer.telemetry.traces import Span, TraceServicer
from gossamer.telemetry.traces_sampling import TraceSampler
from gossamer.telemetry.traces_store import write_spans

log = logging.getLogger(__name__)

#: seconds in-flight streams get to finish at shutdown
STOP_GRACE_S = 1.0
DEFAULT_RETENTION_S = 24 * 3600.0
DEFAULT_MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class ServeSettings:
    listen: tuple[str, int]
    http: tuple[str, int]
    data: Path
    retention_s: float = DEFAULT_RETENTION_S
    max_bytes: int = DEFAULT_MAX_BYTES
    token_file: Path | None = None
    insecure_no_auth: bool = False
    flush_interval_s: float = 5.0
    #: traces: the kept fraction of those neither failed nor slow (docs/telemetry.md)
    trace_keep: float = 0.1
    #: a trace at least this slow is kept; None: the p99 of its root service ("auto")
    trace_slow_ms: float | None = None
    #: a trace is decided once no span of it came for this long
    trace_decision_s: float = 10.0
    #: OTLP/gRPC collector kept spans and minute aggregates are exported to (HOST:PORT)
    otlp_endpoint: str | None = None
    #: plaintext to the collector (else TLS, the system's roots)
    otlp_insecure: bool = False

    def check(self) -> None:
        if not 0.0 <= self.trace_keep <= 1.0:
            raise ConfigError(f"--trace-keep: {self.trace_keep:g}; give a fraction 0..1 (0.1)")
        if self.trace_slow_ms is not None and self.trace_slow_ms <= 0:
            raise ConfigError(f"--trace-slow: {self.trace_slow_ms:g} ms; give auto or e.g. 500ms")
        if not 0.0 <= self.trace_decision_s <= 300.0:
            raise ConfigError(f"--trace-decision-wait: {self.trace_decision_s:g}s; give 0..300")
        if self.otlp_endpoint is not None:
            host, sep, port = self.otlp_endpoint.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(
                    f"--otlp-endpoint: {self.otlp_endpoint!r} is not HOST:PORT (the "
                    "collector's OTLP/gRPC port, e.g. otel-collector:4317)"
                )
        if self.retention_s < 60:
            raise ConfigError(f"--retention: {self.retention_s:g}s; keep at least 1m")
        if self.max_bytes < 1 << 20:
            raise ConfigError(f"--max-bytes: {self.max_bytes}; allow at least 1 MiB")
        if self.token_file is None and not self.insecure_no_auth:
            raise ConfigError(
                "--token-file: give a file holding the bearer token the query API requires "
                "(or --insecure-no-auth, on a loopback --http only)"
            )
        if self.token_file is not None and self.insecure_no_auth:
            raise ConfigError("--token-file and --insecure-no-auth: give one, not both")
        if self.insecure_no_auth and not _loopback(self.http[0]):
            raise ConfigError(
                f"--insecure-no-auth: --http {self.http[0]} is not loopback; anyone who "
                "reaches it could read the mesh's traffic: give --token-file"
            )

    def token(self) -> str | None:
        if self.token_file is None:
            return None
        try:
            text = self.token_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            where = self.token_file
            raise ConfigError(f"--token-file: cannot read {where}: {e.strerror}") from None
        if len(text) < 16:
            raise ConfigError(
                f"--token-file: {self.token_file} holds {len(text)} characters; a token "
                "needs at least 16 (e.g. `openssl rand -hex 32 > FILE`)"
            )
        return text


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TelemetryService:
    """The aggregates in memory and on disk, and what the API reads."""

    def __init__(
        self,
        store: TelemetryStore,
        clock: Callable[[], float] = time.time,
        sampler: TraceSampler | None = None,
        exporter: OtlpExporter | None = None,
    ) -> None:
        self.store = store
        self.exporter = exporter
        self.clock = clock
        self.aggregator = Aggregator()
        self.reconciler = Reconciler(clock)
        self.servicer = AccessLogServicer(self.aggregator, clock, self.reconciler.received)
        self.request_stats = RequestStats(self.aggregator, clock())
        self.metrics = MetricsServicer(self.reconciler, self.request_stats)
        self.flushed_buckets = 0
        #: gaps a flush took from the reconciler and is writing
        self._gaps_writing: list[Gap] = []
        self.sampler = sampler or TraceSampler()
        self.traces = TraceServicer(self._spans_in)

    def _spans_in(self, spans: list[Span]) -> None:
        self.sampler.add(spans, self.clock())

    async def flush(self, everything: bool = False) -> None:
        """Write closed minutes (all open ones with ``everything``) and receipts."""
        now_minute = int(self.clock()) // 60
        taken = self.aggregator.take(None if everything else now_minute - 1)
        receipts = self.servicer.take_receipts()
        if taken and self.exporter is not None:
            self.exporter.offer_minutes(taken)
        # (made here, on the loop, while nothing changes the open buckets or the figures)
        checkpoint = Checkpoint(
            bucket_rows(self.aggregator.open_buckets(0)), self.request_stats.snapshot()
        )
        await self.store.write(taken, receipts, checkpoint)
        self.flushed_buckets += len(taken)
        spans = self.sampler.settle(self.clock(), everything)
        if spans:
            await self.store.call(write_spans, spans)
            if self.exporter is not None:
                self.exporter.offer_spans(spans)
        if not everything:  # (at shutdown a waiting sample lacks its in-flight entries)
            self.reconciler.settle()
        # (the gaps being written stay visible to ``gaps`` until they are on disk)
        self._gaps_writing = self.reconciler.take_gaps()
        try:
            await self.store.write_reconcile(self.reconciler.snapshot(), self._gaps_writing)
        finally:
            self._gaps_writing = []
        await self.store.prune(now_minute)

    async def buckets(self, since_minute: int) -> list[tuple[Key, Bucket]]:
        stored = await self.store.buckets(since_minute)
        return stored + list(self.aggregator.open_buckets(since_minute))

    async def restore(self) -> None:
        """The reconciliation state the previous process left (``stat_sink``)."""
        self.reconciler.restore(await self.store.reconcile_states())
        self.request_stats.restore(await self.store.request_stats())
        # a killed process's open minutes, consistent with those figures: the requests an
        # export brings after them are counted again, the ones before are in these
        self.aggregator.restore(await self.store.saved_open_buckets())

    async def gaps(self, since_minute: int) -> list[Gap]:
        """Gaps flagged in the window: on disk and not yet written. Those not on disk are
        read before the disk is: a gap a flush writes meanwhile is then on disk or among
        them, never in neither (read after, one written between the two reads was
        missed); one in both counts once."""
        pending = [*self._gaps_writing, *self.reconciler.new_gaps]
        stored = await self.store.gaps(since_minute)
        fresh = [g for g in pending if int(g.to_s) // 60 >= since_minute and g not in stored]
        return stored + fresh

    async def receipts(self, since_minute: int) -> dict[str, int]:
        stored = await self.store.receipts(since_minute)
        for (minute, node), n in self.servicer.receipts.items():
            if minute >= since_minute:
                stored[node] = stored.get(node, 0) + n
        return stored

    async def run_flusher(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.flush()
            except Exception:  # a full disk must not stop ingestion; said, retried
                log.exception("telemetry: flushing to %s failed; will retry", self.store.path)


class _Server(uvicorn.Server):  # type: ignore[misc]
    """uvicorn without its own signal handling: this process stops on its ``stop`` event."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(address: tuple[str, int], option: str) -> socket.socket:
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise ConfigError(f"{option}: cannot listen on {host}:{port}: {e.strerror}") from None
    sock.setblocking(False)
    return sock


async def serve(
    settings: ServeSettings,
    stop: asyncio.Event,
    on_listening: Callable[[tuple[str, int], tuple[str, int]], None] | None = None,
) -> TelemetryService:
    """Serve until ``stop`` is set; flush everything; returns the service (its counts)."""
    settings.check()
    token = settings.token()
    store = TelemetryStore(settings.data, settings.retention_s, settings.max_bytes)
    await store.open()
    sampler = TraceSampler(
        keep=settings.trace_keep,
        slow_ms=settings.trace_slow_ms,
        decision_wait_s=settings.trace_decision_s,
    )
    exporter = None
    if settings.otlp_endpoint is not None:
        exporter = OtlpExporter(settings.otlp_endpoint, settings.otlp_insecure)
    service = TelemetryService(store, sampler=sampler, exporter=exporter)
    await service.restore()
    grpc_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(service.servicer, grpc_server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(service.metrics, grpc_server)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service.traces, grpc_server)
    host, port = settings.listen
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = grpc_server.add_insecure_port(target)
    except RuntimeError:
        bound = 0
    if bound == 0:
        await store.close()
        raise ConfigError(f"--listen: cannot listen on {target}; is the port taken?")
    try:
        sock = _bind(settings.http, "--http")
    except ConfigError:
        await store.close()
        raise
    http = _Server(
        uvicorn.Config(api_app(service, token), log_level="warning", lifespan="off", ws="none")
    )
    await grpc_server.start()
    try:
        if on_listening is not None:
            on_listening((host, bound), sock.getsockname()[:2])
        async with asyncio.TaskGroup() as tg:
            flusher = tg.create_task(service.run_flusher(settings.flush_interval_s))
            api = tg.create_task(http.serve(sockets=[sock]))
            export = tg.create_task(exporter.run()) if exporter is not None else None
            await stop.wait()
            http.should_exit = True
            await grpc_server.stop(STOP_GRACE_S)
            flusher.cancel()
            if export is not None:
                export.cancel()
            await api
    finally:
        await grpc_server.stop(None)
        sock.close()
        try:
            await service.flush(everything=True)
            log.info("telemetry: flushed every open minute to %s", settings.data)
            if exporter is not None:
                await exporter.drain(3 * STOP_GRACE_S)
        finally:
            await store.close()
    return service
