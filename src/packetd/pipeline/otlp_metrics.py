"""OpenTelemetry semantic-convention duration histograms from roundtrips, for the OTLP metrics exporter.

Every answered roundtrip (kind `roundtrip`) is one measurement, in seconds, of one semconv histogram. Which
one is decided by the convention its span attributes follow — the span builders (each protocol's
`SPEC.semantics.span`, which spans use too) are the one place that maps a protocol's fields to semconv names, so
a metric and a span of one exchange say the same thing from the same redacted view:

    span attribute present          metric                                  its attributes (when known)
    http.request.method             http.server.request.duration            method, status, scheme, route,
                                                                            network.protocol.*, server.*
    rpc.system.name | rpc.system    rpc.server.call.duration                rpc.system.name, rpc.method,
                                                                            rpc.response.status_code, server.*
    db.system.name | db.system      db.client.operation.duration            db.system.name, operation,
                                                                            collection, namespace, status
    messaging.system                messaging.client.operation.duration     system, operation name/type,
                                                                            destination, consumer group
    dns.question.name               dns.lookup.duration                     dns.question.name
    (all)                                                                   error.type when an error

Unanswered records have no duration; handshakes and one-way messages are not operations. Query text, URL
paths and other unbounded values are never metric attributes (semconv says the same).

Pure: a capture worker accumulates deltas here and ships `take()`; the agent's store
(export/otlp_metrics.py) sums them into cumulative series. The pending table is bounded.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from packetd.pairing.roundtrip import Roundtrip
from packetd.pipeline.semantics import AttrValue, semantics_of
from packetd.protocols.base import Kind

# Wire latencies: a loopback Redis GET is ~50 µs, a slow query tens of seconds. 1-2.5-5 steps from 25 µs to
# 60 s keep a quantile within one step's width at every scale (semconv's HTTP advice starts at 5 ms,
# which puts every sub-millisecond exchange in the first bucket). The Prometheus histograms' default too
# (metrics.SECONDS_BUCKETS).
DEFAULT_BOUNDS: tuple[float, ...] = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 25.0, 60.0,
)  # fmt: skip

# Series a worker accumulates between two flushes (about a second); beyond it, measurements fold into the
# overflow series, as the OpenTelemetry SDK's cardinality limit does (attribute otel.metric.overflow).
MAX_PENDING_SERIES = 10_000
OVERFLOW: tuple[tuple[str, AttrValue], ...] = (("otel.metric.overflow", True),)

HTTP = "http.server.request.duration"
RPC = "rpc.server.call.duration"
DB = "db.client.operation.duration"
MESSAGING = "messaging.client.operation.duration"
DNS = "dns.lookup.duration"

DESCRIPTIONS = {
    HTTP: "Duration of HTTP server requests, first request byte to last response byte on the wire.",
    RPC: "Duration of RPC server calls, as seen on the wire.",
    DB: "Duration of database client operations, as seen on the wire.",
    MESSAGING: "Duration of messaging client operations, as seen on the wire.",
    DNS: "Duration of DNS lookups, query to answer on the wire.",
}

# metric → the span attributes it keeps, in a fixed order (error.type is added separately)
KEEP: dict[str, tuple[str, ...]] = {
    HTTP: (
        "http.request.method",
        "http.response.status_code",
        "http.route",
        "url.scheme",
        "network.protocol.name",
        "network.protocol.version",
        "server.address",
        "server.port",
    ),
    RPC: ("rpc.system.name", "rpc.method", "rpc.response.status_code", "server.address", "server.port"),
    DB: (
        "db.system.name",
        "db.operation.name",
        "db.collection.name",
        "db.namespace",
        "db.response.status_code",
        "server.address",
        "server.port",
    ),
    MESSAGING: (
        "messaging.system",
        "messaging.operation.name",
        "messaging.operation.type",
        "messaging.destination.name",
        "messaging.consumer.group.name",
        "server.address",
        "server.port",
    ),
    DNS: ("dns.question.name",),
}

Attrs = tuple[tuple[str, AttrValue], ...]
# a delta: [count, sum, min, max, bucket counts (len(bounds) + 1)]
Delta = list[float]


def metric_for(attrs: Mapping[str, AttrValue]) -> str | None:
    """The semconv histogram a span's attributes belong to, or None."""
    if "http.request.method" in attrs:
        return HTTP
    if "rpc.system.name" in attrs or "rpc.system" in attrs:
        return RPC
    if "db.system.name" in attrs or "db.system" in attrs:
        return DB
    if "messaging.system" in attrs:
        return MESSAGING
    if "dns.question.name" in attrs:
        return DNS
    return None


def metric_attributes(metric: str, rt: Roundtrip, span: Mapping[str, AttrValue]) -> Attrs:
    """The metric's attributes, from the span's; older spellings mapped to the current ones."""
    a = dict(span)
    if metric == RPC:
        a.setdefault("rpc.system.name", a.get("rpc.system", ""))
        method, service = a.get("rpc.method"), a.get("rpc.service")
        if isinstance(method, str) and isinstance(service, str) and "/" not in method:
            a["rpc.method"] = f"{service}/{method}"  # semconv ≥1.38: the fully-qualified method
        if rt.status is not None:
            a.setdefault("rpc.response.status_code", str(rt.status))
    elif metric == DB:
        a.setdefault("db.system.name", a.get("db.system", ""))
    out: list[tuple[str, AttrValue]] = [(k, a[k]) for k in KEEP[metric] if k in a and a[k] != ""]
    error = span.get("error.type")
    if error is None and rt.error:
        error = str(rt.status)
    if error is not None:
        out.append(("error.type", error))
    return tuple(out)


class OtlpMetricsAggregator:
    """Deltas of the semconv histograms since the last `take()`."""

    def __init__(self, bounds: Sequence[float] = DEFAULT_BOUNDS) -> None:
        if not bounds or list(bounds) != sorted(set(bounds)) or bounds[0] <= 0:
            raise ValueError("buckets: expected increasing positive numbers of seconds")
        self.bounds = tuple(float(b) for b in bounds)
        self.pending: dict[tuple[str, Attrs], Delta] = {}
        self.overflowed = 0  # measurements folded into the overflow series (pending bound)

    def process(self, rt: Roundtrip, rec: dict[str, Any] | None = None) -> None:
        """One measurement; `rec` is the record's `to_json()` when the caller already built it."""
        duration = rt.duration_ns
        if rt.kind != Kind.ROUNDTRIP or duration is None:
            return
        build = semantics_of(rt.protocol).span
        if build is None:
            return
        # the span's endpoint attributes (the builder's server.address, e.g. an HTTP Host, wins), without
        # the rest of a span (ids, resource) that a metric does not use
        attrs: dict[str, AttrValue] = {"server.address": rt.server[0], "server.port": rt.server[1]}
        attrs.update(
            build(rt.request, rt.response, rec if rec is not None else rt.to_json())[1]
        )  # the redacted view, as spans
        metric = metric_for(attrs)
        if metric is None:
            return
        key = (metric, metric_attributes(metric, rt, attrs))
        delta = self.pending.get(key)
        if delta is None:
            if len(self.pending) >= MAX_PENDING_SERIES:
                self.overflowed += 1
                key = (metric, OVERFLOW)
                delta = self.pending.get(key)
            if delta is None:
                delta = self.pending[key] = [0, 0.0, float("inf"), float("-inf")] + [0] * (
                    len(self.bounds) + 1
                )
        seconds = duration / 1e9
        delta[0] += 1
        delta[1] += seconds
        delta[2] = min(delta[2], seconds)
        delta[3] = max(delta[3], seconds)
        # OTLP explicit buckets are (previous bound, bound]: a value equal to a bound belongs to it
        delta[4 + bisect.bisect_left(self.bounds, seconds)] += 1

    def take(self) -> dict[str, Any]:
        out = {"bounds": self.bounds, "series": self.pending, "overflowed": self.overflowed}
        self.pending = {}
        self.overflowed = 0
        return out
