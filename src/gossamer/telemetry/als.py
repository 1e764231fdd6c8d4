"""``envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs`` over grpc.aio.

Envoy sends its node (and the logger's ``log_name``) only in a stream's first message: the
``Reporter`` is parsed once and kept for the stream. Every HTTP entry received is counted
per proxy (``receipts``: what Envoy's ``logs_written`` can be reconciled with); only
finished requests (``DownstreamEnd``, or NotSet from Envoys that do not set it) are
aggregated. An inbound sidecar entry that the proxy's denial log also got
(``translate.denial_log.logged_as_denial``, when the proxy has that log: ``Reporter.
denial_log``) is told to the reconciliation twice: Envoy counts it twice in its one
``logs_written``. A stream whose first message has no usable identifier is refused
(INVALID_ARGUMENT, naming the field): its entries could not be attributed to anyone.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from gossamer.errors import GossamerError
from gossamer.telemetry.aggregate import Aggregator
from gossamer.telemetry.entries import Recorder, Reporter
from gossamer.translate.denial_log import logged_as_denial

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    streams_total: int = 0
    streams_open: int = 0
    streams_refused: int = 0
    #: HTTP entries received (all types) and those counted as requests
    entries: int = 0
    requests: int = 0
    tcp_entries: int = 0
    #: received entries the proxy's denial log also got (counted twice in ``logs_written``)
    denial_log_entries: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "streamsTotal": self.streams_total,
            "streamsOpen": self.streams_open,
            "streamsRefused": self.streams_refused,
            "entries": self.entries,
            "requests": self.requests,
            "tcpEntries": self.tcp_entries,
            "denialLogEntries": self.denial_log_entries,
        }


def _tick(common: accesslog_pb2.AccessLogCommon) -> int:
    """When Envoy wrote the entry (the request's end), in ``stat_sink.TICKS`` (100 ms)."""
    start, took = common.start_time, common.duration
    ticks = (start.seconds + took.seconds) * 10 + (start.nanos + took.nanos) // 100_000_000
    return int(ticks)


class AccessLogServicer(als_pb2_grpc.AccessLogServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        aggregator: Aggregator,
        clock: Callable[[], float] = time.time,
        written: Callable[[str, list[int]], None] | None = None,
    ) -> None:
        self.aggregator = aggregator
        #: told each message's entries by node and write tick (``stat_sink.Reconciler``)
        self.written = written
        self.recorder = Recorder()
        self.clock = clock
        self.stats = IngestStats()
        #: (wall-clock minute, node id) -> entries received, until the next flush takes them
        self.receipts: defaultdict[tuple[int, str], int] = defaultdict(int)
        #: entries received per node id since this process started
        self.received_by_node: defaultdict[str, int] = defaultdict(int)

    def take_receipts(self) -> list[tuple[int, str, int]]:
        out = [(minute, node, n) for (minute, node), n in self.receipts.items()]
        self.receipts.clear()
        return out

    def ingest(self, reporter: Reporter, message: als_pb2.StreamAccessLogsMessage) -> None:
        """Count and aggregate one message's entries (the per-request hot path)."""
        entries = message.http_logs.log_entry
        n = len(entries)
        if message.HasField("tcp_logs"):
            self.stats.tcp_entries += len(message.tcp_logs.log_entry)
        if not n:
            return
        stats = self.stats
        stats.entries += n
        self.receipts[(int(self.clock()) // 60, reporter.node_id)] += n
        self.received_by_node[reporter.node_id] += n
        if self.written is not None:  # when Envoy wrote each: start + duration, 100 ms ticks
            ticks = [_tick(e.common_properties) for e in entries]
            if reporter.denial_log:  # and again each one its denial log wrote too
                denied = logged_as_denial
                denials = [
                    t
                    for t, e in zip(ticks, entries, strict=True)
                    if denied(e.common_properties.metadata)
                ]
                stats.denial_log_entries += len(denials)
                ticks += denials
            self.written(reporter.node_id, ticks)
        record = self.recorder.record
        add = self.aggregator.add
        counted = 0
        for entry in entries:
            rec = record(reporter, entry)
            if rec is not None:
                add(rec)
                counted += 1
        stats.requests += counted

    async def StreamAccessLogs(  # the protocol's name
        self,
        request_iterator: AsyncIterator[als_pb2.StreamAccessLogsMessage],
        context: grpc.aio.ServicerContext,
    ) -> als_pb2.StreamAccessLogsResponse:
        self.stats.streams_total += 1
        self.stats.streams_open += 1
        reporter: Reporter | None = None
        try:
            async for message in request_iterator:
                if reporter is None:
                    try:
                        if not message.HasField("identifier"):
                            raise GossamerError(
                                "the stream's first message has no identifier (node and "
                                "log_name): its entries cannot be attributed"
                            )
                        ident = message.identifier
                        reporter = Reporter.of(ident.node, ident.log_name)
                    except GossamerError as e:
                        self.stats.streams_refused += 1
                        log.warning("access-log stream refused: %s", e)
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
                        raise  # (abort raises; this only satisfies the type checker)
                    log.debug("access-log stream from %s (%s)", reporter.node_id, reporter.view)
                self.ingest(reporter, message)
        finally:
            self.stats.streams_open -= 1
        return als_pb2.StreamAccessLogsResponse()
