"""OpenTelemetry-native exports, for data that goes through a collector: OTLP metrics and OTLP logs.

* Metrics — the capture workers aggregate semconv duration histograms (pipeline/otlp_metrics.py) and ship
  deltas; `OtlpMetricStore` sums them into cumulative series (start time: a series' first measurement;
  idle series expire after `metricsStorage.expired`), at most `seriesLimit` per metric — beyond, measurements fold into the
  series with `otel.metric.overflow=true` (the SDK's own overflow convention), counted. Every `interval`,
  `OtlpMetrics` queues a snapshot and sends it with the SDK's OTLP metric exporter.
* Logs — one log record per roundtrip of the roundtrips/ pipelines. The body is the record contract's JSON
  object and the attributes its envelope (`packetd.*` for what semconv has no name for), both read back
  from the record's JSON line — the one redacted view every output is built from, never the decoder's
  fields. Trace and span ids are the roundtrip's span's (pipeline/pipelines.py `log_entry`), so a
  backend links the record and the span. Timestamp: the first byte's packet time.

Both are `_Worker`s (export/senders.py): a bounded queue the pipeline only appends to, a thread, retry with
back-off, the drop counter when the bound is hit, a flush on shutdown. Transport: OTLP over HTTP
(protobuf) or gRPC, gzip optional, through the SDK's exporters (the gRPC one is an optional package).

The resource is the observer — `service.name=packetd`, `host.name`, and `k8s.node.name` when the
downward API sets `$NODE_NAME` — since every observed server is an attribute of the data, not a process
that reported it.
"""

from __future__ import annotations

import logging
import operator
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import orjson

from packetd import __version__
from packetd._values import value
from packetd.export.senders import _Worker, host_identity
from packetd.pipeline.otlp_metrics import DESCRIPTIONS, OVERFLOW, Attrs
from packetd.pipeline.pipelines import LogEntry

log = logging.getLogger("packetd.export")

SCOPE = "packetd"


def observer_resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    # host.name, and k8s.node.name from $NODE_NAME: the one rule the span resources follow too
    return Resource.create({"service.name": "packetd", "service.version": __version__, **host_identity()})


@value
class Transport:
    """Where and how an OTLP exporter sends."""

    protocol: str  # "http/protobuf" | "grpc"
    endpoint: str
    timeout_s: float
    headers: dict[str, str]
    gzip: bool


def _sdk_exporter(signal: str, t: Transport) -> Any:
    """The SDK's OTLP exporter of `signal` ("metrics" | "logs") for the transport."""
    protocol, endpoint, headers, timeout_s, gzip = t.protocol, t.endpoint, t.headers, t.timeout_s, t.gzip
    if protocol == "grpc":
        import grpc  # type: ignore[import-untyped]
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics

        url = urllib.parse.urlsplit(endpoint)
        cls: Any = GrpcMetrics if signal == "metrics" else GrpcLogs
        return cls(
            endpoint=url.netloc,
            insecure=url.scheme == "http",
            headers=headers or None,
            timeout=timeout_s,
            compression=grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression,
        )
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics

    cls = HttpMetrics if signal == "metrics" else HttpLogs
    return cls(
        endpoint=endpoint,
        headers=headers or None,
        timeout=timeout_s,
        compression=Compression.Gzip if gzip else Compression.NoCompression,
    )


class _OtlpWorker(_Worker):
    """A `_Worker` whose send is one call of an SDK exporter's `export`."""

    def __init__(
        self,
        name: str,
        signal: str,
        transport: Transport,
        interval_s: float,
        queue_size: int,
        batch: int = 0,
    ) -> None:
        super().__init__(name, interval_s, queue_size, batch)
        self.endpoint = transport.endpoint
        self.timeout_s = transport.timeout_s
        self._exporter = _sdk_exporter(signal, transport)
        self._resource = observer_resource()

    def _send(self, batch: list[Any], success: Any, build: Callable[[list[Any]], Any], **kw: Any) -> bool:
        """`export(build(batch))`; on failure (a result, or an exception the SDK let through) the batch
        goes back to the head of the queue and the back-off grows. Never raises into the agent."""
        try:
            result = self._exporter.export(build(batch), **kw)
        except Exception as exc:
            result = None
            log.debug("%s exporter: %s", self.stats.name, exc)
        if result is not success:
            self.give_back(batch)
            self._failed(f"OTLP export to {self.endpoint} failed")
            return False
        self._succeeded()
        return True

    def stop(self, flush_timeout_s: float) -> None:
        super().stop(flush_timeout_s)
        self._exporter.shutdown()


# ---------------------------------------------------------------------------------------------- metrics
class OtlpMetricStore:
    """Cumulative semconv histograms, summed from the workers' deltas; thread-safe (merge: the agent's
    loop; snapshot: the exporter's thread). A series idle for `expired_ns` is dropped (as the Prometheus
    store drops its series): one that comes back starts a new cumulative series with a new start time,
    which OTLP consumers read as a reset, so the series limit is not spent on what stopped."""

    def __init__(self, series_limit: int, expired_ns: int = 300 * 1_000_000_000) -> None:
        self.series_limit = series_limit
        self.expired_ns = expired_ns
        # metric → attributes → [start ns, last update ns, count, sum, min, max, bucket counts...]
        self._series: dict[str, dict[Attrs, list[float]]] = {}
        self._bounds: dict[str, tuple[float, ...]] = {}
        self.overflowed: dict[str, int] = {}  # measurements folded into overflow series, per metric
        self.expired = 0  # series dropped for idleness
        self._lock = threading.Lock()

    def merge(self, deltas: dict[str, Any] | None, now_ns: int) -> None:
        if not deltas:
            return
        bounds = tuple(deltas["bounds"])
        with self._lock:
            for (metric, key), d in deltas["series"].items():
                if self._bounds.get(metric) != bounds:  # new buckets (a reload): new cumulative series
                    self._bounds[metric] = bounds
                    self._series[metric] = {}
                table = self._series[metric]
                attrs = key
                if attrs == OVERFLOW:  # folded by a worker's pending bound
                    self.overflowed[metric] = self.overflowed.get(metric, 0) + int(d[0])
                cum = table.get(attrs)
                if cum is None and len(table) >= self.series_limit:
                    self.overflowed[metric] = self.overflowed.get(metric, 0) + int(d[0])
                    attrs = OVERFLOW
                    cum = table.get(attrs)
                if cum is None:
                    table[attrs] = [now_ns, now_ns, *d]
                    continue
                cum[1] = now_ns
                cum[2] += d[0]
                cum[3] += d[1]
                cum[4] = min(cum[4], d[2])
                cum[5] = max(cum[5], d[3])
                for i in range(6, len(cum)):
                    cum[i] += d[i - 2]

    def expire(self, now_ns: int) -> None:
        with self._lock:
            for table in self._series.values():
                idle = [a for a, c in table.items() if now_ns - c[1] > self.expired_ns]
                for a in idle:
                    del table[a]
                self.expired += len(idle)

    def series_count(self, metric: str) -> int:
        with self._lock:
            return len(self._series.get(metric, {}))

    def snapshot(self, now_ns: int, resource: Any) -> Any:
        """The SDK's MetricsData of every series (cumulative temporality)."""
        from opentelemetry.sdk.metrics.export import (
            AggregationTemporality,
            Histogram,
            HistogramDataPoint,
            Metric,
            MetricsData,
            ResourceMetrics,
            ScopeMetrics,
        )
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.expire(now_ns)
        metrics = []
        with self._lock:
            for name, table in sorted(self._series.items()):
                if not table:
                    continue
                bounds = self._bounds[name]
                points = [
                    HistogramDataPoint(
                        attributes=dict(attrs),
                        start_time_unix_nano=int(c[0]),
                        time_unix_nano=now_ns,
                        count=int(c[2]),
                        sum=c[3],
                        bucket_counts=[int(n) for n in c[6:]],
                        explicit_bounds=bounds,
                        min=c[4],
                        max=c[5],
                    )
                    for attrs, c in table.items()
                ]
                data = Histogram(
                    data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE
                )
                metrics.append(Metric(name=name, description=DESCRIPTIONS.get(name), unit="s", data=data))
        scope = ScopeMetrics(scope=InstrumentationScope(SCOPE, __version__), metrics=metrics, schema_url="")
        return MetricsData(
            resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[scope], schema_url="")]
        )


class OtlpMetrics(_OtlpWorker):
    """Every `interval`, a snapshot of the store is queued (bounded) and sent; kept and retried on failure."""

    def __init__(
        self, store: OtlpMetricStore, transport: Transport, interval_s: float, queue_size: int
    ) -> None:
        super().__init__("otlpMetrics", "metrics", transport, interval_s, queue_size)
        self.store = store

    def cycle(self, final: bool = False) -> None:
        from opentelemetry.sdk.metrics.export import MetricExportResult

        if not self._backoff or final:
            data = self.store.snapshot(time.time_ns(), self._resource)
            if data.resource_metrics[0].scope_metrics[0].metrics:
                self.offer([data])
        while True:
            batch = self.take(1)
            if not batch:
                return
            ms = self.timeout_s * 1000
            if not self._send(batch, MetricExportResult.SUCCESS, operator.itemgetter(0), timeout_millis=ms):
                return
            self.stats.sent += 1


# ---------------------------------------------------------------------------------------------- logs
def log_attributes(record: dict[str, Any]) -> dict[str, Any]:
    """The envelope of a record (its JSON object) as log attributes: semconv names where they exist."""
    client, server = record.get("client") or {}, record.get("server") or {}
    attrs = {
        "packetd.protocol": record.get("protocol"),
        "packetd.kind": record.get("kind"),
        "packetd.operation": record.get("operation"),
        "packetd.status": record.get("status"),
        "packetd.error": record.get("error"),
        "packetd.duration_ns": record.get("duration_ns"),
        "packetd.flags": record.get("flags") or None,
        "server.address": server.get("ip"),
        "server.port": server.get("port"),
        "client.address": client.get("ip"),
        "client.port": client.get("port"),
    }
    return {k: v for k, v in attrs.items() if v is not None}


class OtlpLogs(_OtlpWorker):
    """Log records batched to an OTLP endpoint with the SDK's log exporter."""

    def __init__(self, transport: Transport, batch: int, interval_s: float, queue_size: int) -> None:
        super().__init__("otlpLogs", "logs", transport, interval_s, queue_size, batch)
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._scope = InstrumentationScope(SCOPE, __version__)

    def cycle(self, final: bool = False) -> None:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        while self.queue:
            batch = self.take(self.batch)
            if not self._send(batch, LogRecordExportResult.SUCCESS, self.records):
                return
            self.stats.sent += len(batch)
            if not final and len(self.queue) < self.batch:
                return

    def records(self, batch: list[LogEntry]) -> list[Any]:
        """The SDK's log records: content from each entry's record line, ids from its span."""
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.sdk._logs import ReadableLogRecord
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

        now = time.time_ns()
        out = []
        for e in batch:
            record = orjson.loads(e.line)
            # the SDK reads a log record's trace id, span id and flags from the span in its context
            span = NonRecordingSpan(SpanContext(e.trace_id, e.span_id, False, TraceFlags(e.trace_flags)))
            rec = LogRecord(
                timestamp=e.start_ns,
                observed_timestamp=now,
                context=set_span_in_context(span),
                severity_text="ERROR" if e.error else "INFO",
                severity_number=SeverityNumber.ERROR if e.error else SeverityNumber.INFO,
                body=record,
                attributes=log_attributes(record),
                event_name="packetd.roundtrip",
            )
            out.append(ReadableLogRecord(rec, self._resource, self._scope))
        return out
