"""OTLP metrics and logs, end to end through the SDK's exporters to receivers built on opentelemetry-proto
(over HTTP and over gRPC with grpcio): records decoded from real captures of every protocol run through the
agent's own pipelines, and what arrives is compared with the records — every answered roundtrip counted
once in its semconv histogram, durations in the right buckets (placed here by hand from the records'
packet times), one log record per roundtrip whose body is the record's JSON line and whose ids are its
span's. Then the exporters' retry, queue bound and drop counter against a receiver that refuses."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest

from packetd.agent.config import ConfigError, parse_config
from packetd.engine import Rule
from packetd.export.otlp import OtlpLogs, OtlpMetrics, OtlpMetricStore, Transport
from packetd.pairing.roundtrip import Roundtrip, dumps
from packetd.pipeline.otlp_metrics import DEFAULT_BOUNDS, OVERFLOW
from packetd.pipeline.pipelines import Pipelines
from packetd.pipeline.spans import RoundtripsToTraces
from packetd.protocols.registry import REGISTRY
from tests.helpers.backends import OtlpGrpcReceiver, OtlpReceiver
from tests.helpers.golden import manifest, run_file

CORPUS_DIR = {"http": "http1"}
# written here from the semantic conventions, independently of the code under test
SEMCONV = {
    "http": "http.server.request.duration",
    "http2": "http.server.request.duration",
    "grpc": "rpc.server.call.duration",
    "redis": "db.client.operation.duration",
    "mysql": "db.client.operation.duration",
    "postgresql": "db.client.operation.duration",
    "mongodb": "db.client.operation.duration",
    "kafka": "messaging.client.operation.duration",
    "amqp": "messaging.client.operation.duration",
    "dns": "dns.lookup.duration",
}
FILES_PER_PROTOCOL = 2  # enough variety (errors, several operations) at a second or two per protocol


def corpus_records() -> list[Roundtrip]:
    records: list[Roundtrip] = []
    for spec in REGISTRY.specs():
        for row in manifest(CORPUS_DIR.get(spec.name, spec.name))[:FILES_PER_PROTOCOL]:
            got, _ = run_file(row.path, (Rule(protocol=spec.name, ports=row.ports),))
            records += got
    return records


@pytest.fixture(scope="module")
def records() -> list[Roundtrip]:
    return corpus_records()


class Receiver:
    """One of the two receivers behind one interface: (protocol, endpoint for a signal, data, stop)."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.impl: Any = OtlpGrpcReceiver() if protocol == "grpc" else OtlpReceiver()

    def endpoint(self, signal: str) -> str:
        return self.impl.endpoint if self.protocol == "grpc" else self.impl.url(signal)

    def stop(self) -> None:
        self.impl.stop()


@pytest.fixture(params=["http/protobuf", "grpc"])
def receiver(request: pytest.FixtureRequest) -> Any:
    r = Receiver(request.param)
    yield r
    r.stop()


def transport(receiver: Receiver, signal: str, timeout_s: float, gzip: bool) -> Transport:
    return Transport(receiver.protocol, receiver.endpoint(signal), timeout_s, {}, gzip)


def run_pipelines(records: list[Roundtrip]) -> Pipelines:
    p = Pipelines(
        [], [], traces_enabled=False, roundtrips_enabled=False, otlp_metrics_bounds=(), otlp_logs=True
    )
    for rt in records:
        p.process(rt)
    return p


def bucket_of(seconds: float, bounds: tuple[float, ...]) -> int:
    """OTLP explicit bucket i holds (bounds[i-1], bounds[i]]; the last one everything above."""
    for i, b in enumerate(bounds):
        if seconds <= b:
            return i
    return len(bounds)


def test_metrics_count_every_answered_roundtrip_in_its_semconv_histogram(
    records: list[Roundtrip], receiver: Receiver
) -> None:
    p = run_pipelines(records)
    assert p.otlp is not None
    store = OtlpMetricStore(series_limit=10_000)
    store.merge(p.otlp.take(), time.time_ns())
    exp = OtlpMetrics(store, transport(receiver, "metrics", 5, True), 60, 10)
    exp.start()  # its thread waits out the interval: the test drives cycle()
    exp.cycle()
    exp.stop(1)
    assert exp.stats.sent == 1 and exp.stats.failed == 0

    want_count: Counter[str] = Counter()
    want_sum: defaultdict[str, float] = defaultdict(float)
    want_buckets: defaultdict[str, list[int]] = defaultdict(lambda: [0] * (len(DEFAULT_BOUNDS) + 1))
    want_db: Counter[str] = Counter()
    for rt in records:
        if rt.kind != "roundtrip" or rt.duration_ns is None:
            continue
        name = SEMCONV[rt.protocol]
        want_count[name] += 1
        want_sum[name] += rt.duration_ns / 1e9
        want_buckets[name][bucket_of(rt.duration_ns / 1e9, DEFAULT_BOUNDS)] += 1
        if name == "db.client.operation.duration":
            want_db[rt.protocol] += 1
    assert set(want_count) == set(SEMCONV.values())  # the corpus exercises every convention

    got_count: Counter[str] = Counter()
    got_sum: defaultdict[str, float] = defaultdict(float)
    got_buckets: defaultdict[str, list[int]] = defaultdict(lambda: [0] * (len(DEFAULT_BOUNDS) + 1))
    got_db: Counter[str] = Counter()
    for point in receiver.impl.metrics:
        name = point["name"]
        assert point["unit"] == "s" and point["temporality"] == 2  # CUMULATIVE
        assert point["bounds"] == list(DEFAULT_BOUNDS)
        assert point["scope"][0] == "packetd" and point["resource"]["service.name"] == "packetd"
        assert sum(point["bucket_counts"]) == point["count"]
        got_count[name] += point["count"]
        got_sum[name] += point["sum"]
        for i, n in enumerate(point["bucket_counts"]):
            got_buckets[name][i] += n
        attrs = point["attributes"]
        assert "url.path" not in attrs and "db.query.text" not in attrs  # unbounded: never a metric label
        if name == "db.client.operation.duration":
            got_db[attrs["db.system.name"]] += point["count"]
        if name == "http.server.request.duration":
            assert isinstance(attrs["http.request.method"], str)
            if attrs.get("http.response.status_code", 0) >= 500:
                assert attrs["error.type"] == str(attrs["http.response.status_code"])
        if name == "rpc.server.call.duration":
            assert attrs["rpc.system.name"] == "grpc" and "/" in attrs["rpc.method"]
    assert got_count == want_count
    assert got_db == want_db
    assert got_buckets == want_buckets
    for name, total in want_sum.items():
        assert got_sum[name] == pytest.approx(total, rel=1e-9)


def test_one_log_record_per_roundtrip_with_the_record_as_body_and_the_spans_ids(
    records: list[Roundtrip], receiver: Receiver
) -> None:
    p = run_pipelines(records)
    assert p.lines == []  # the roundtrip file is off: its lines are not built for nothing
    exp = OtlpLogs(transport(receiver, "logs", 5, True), 100_000, 60, 100_000)
    exp.start()  # its thread waits out the interval: the test drives cycle()
    exp.offer(p.logs)
    exp.cycle(final=True)
    exp.stop(1)
    assert exp.stats.sent == len(records) and exp.stats.dropped == 0
    logs = receiver.impl.logs
    assert len(logs) == len(records)
    spans = RoundtripsToTraces()
    by_body = {orjson.dumps(rec["body"]): rec for rec in logs}
    for rt in records:
        line = dumps(rt)
        rec = by_body[orjson.dumps(orjson.loads(line))]  # the body is the record's JSON, field for field
        span = spans.process(rt)
        if span is not None:
            assert rec["trace_id"] == f"{span.trace_id:032x}" and rec["span_id"] == f"{span.span_id:016x}"
        assert rec["time"] == rt.start_ns
        assert (rec["severity_text"], rec["severity_number"]) == (("ERROR", 17) if rt.error else ("INFO", 9))
        assert rec["event_name"] == "packetd.roundtrip"
        a = rec["attributes"]
        assert a["packetd.protocol"] == rt.protocol and a["server.address"] == rt.server[0]
        assert a["server.port"] == rt.server[1] and a["client.port"] == rt.client[1]
        assert a["packetd.kind"] == rt.kind and a.get("packetd.operation") == (rt.operation or None)
    assert len({(r["trace_id"], r["span_id"]) for r in logs}) > 0


def test_exporters_retry_a_refusing_receiver_and_count_what_the_queue_bound_drops(
    receiver: Receiver, records: list[Roundtrip]
) -> None:
    p = run_pipelines(records[:40])
    entries = p.logs
    assert len(entries) == 40
    receiver.impl.fail = 10_000  # every attempt, including the SDK's own retries within the timeout
    logs = OtlpLogs(transport(receiver, "logs", 0.5, False), 100, 60, 30)
    logs.start()  # its thread waits out the interval: the test drives cycle()
    logs.offer(entries)
    assert logs.stats.dropped == 10 and logs.stats.queue_length == 30  # the oldest 10 gave way
    logs.cycle()
    assert logs.stats.failed == 1 and logs.stats.sent == 0 and logs.stats.queue_length == 30
    receiver.impl.fail = 0
    logs.cycle()
    assert logs.stats.sent == 30 and logs.stats.queue_length == 0
    bodies = [orjson.dumps(r["body"]) for r in receiver.impl.logs]
    assert bodies == [orjson.dumps(orjson.loads(e.line)) for e in entries[10:]]  # the newest 30, in order
    logs.stop(1)

    assert p.otlp is not None
    store = OtlpMetricStore(series_limit=10_000)
    store.merge(p.otlp.take(), time.time_ns())
    receiver.impl.fail = 10_000
    metrics = OtlpMetrics(store, transport(receiver, "metrics", 0.5, False), 60, 2)
    metrics.start()  # its thread waits out the interval: the test drives cycle()
    metrics.cycle()
    assert metrics.stats.failed == 1 and metrics.stats.queue_length == 1
    metrics.cycle(final=True)  # a second snapshot queued; the bound of 2 holds both
    metrics.cycle(final=True)  # a third: the oldest gives way
    assert metrics.stats.dropped == 1 and metrics.stats.queue_length == 2
    receiver.impl.fail = 0
    metrics.cycle(final=True)
    assert metrics.stats.sent >= 2 and metrics.stats.queue_length == 0
    metrics.stop(1)


def test_series_beyond_the_limit_fold_into_the_overflow_series() -> None:
    store = OtlpMetricStore(series_limit=2)
    d = [1, 0.001, 0.001, 0.001] + [0] * (len(DEFAULT_BOUNDS) + 1)
    series = {("dns.lookup.duration", (("dns.question.name", f"h{i}.example"),)): list(d) for i in range(5)}
    store.merge({"bounds": DEFAULT_BOUNDS, "series": series, "overflowed": 0}, 1_000)
    assert store.series_count("dns.lookup.duration") == 3  # two real series and the overflow one
    assert store.overflowed == {"dns.lookup.duration": 3}
    data = store.snapshot(1_000, None)
    points = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    overflow = [pt for pt in points if dict(OVERFLOW).items() <= dict(pt.attributes).items()]
    assert [pt.count for pt in overflow] == [3]
    assert sum(pt.count for pt in points) == 5  # nothing lost, only folded


def test_idle_series_expire_and_come_back_as_new_cumulative_series() -> None:
    store = OtlpMetricStore(series_limit=10, expired_ns=60 * 10**9)
    d = [1, 0.002, 0.002, 0.002] + [0] * (len(DEFAULT_BOUNDS) + 1)
    a, b = (("dns.question.name", "a.example"),), (("dns.question.name", "b.example"),)
    store.merge({"bounds": DEFAULT_BOUNDS, "series": {("dns.lookup.duration", a): list(d)}}, 0)
    store.merge({"bounds": DEFAULT_BOUNDS, "series": {("dns.lookup.duration", b): list(d)}}, 50 * 10**9)
    store.merge({"bounds": DEFAULT_BOUNDS, "series": {("dns.lookup.duration", b): list(d)}}, 100 * 10**9)
    data = store.snapshot(100 * 10**9, None)  # a: idle 100 s > 60 s; b: updated now
    (metric,) = data.resource_metrics[0].scope_metrics[0].metrics
    ((attrs, count, start),) = [
        (dict(p.attributes), p.count, p.start_time_unix_nano) for p in metric.data.data_points
    ]
    assert (attrs, count, start) == (dict(b), 2, 50 * 10**9) and store.expired == 1
    store.merge({"bounds": DEFAULT_BOUNDS, "series": {("dns.lookup.duration", a): list(d)}}, 120 * 10**9)
    points = (
        store.snapshot(120 * 10**9, None).resource_metrics[0].scope_metrics[0].metrics[0].data.data_points
    )
    back = [p for p in points if dict(p.attributes) == dict(a)]
    assert [(p.count, p.start_time_unix_nano) for p in back] == [(1, 120 * 10**9)]  # a new series


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("exporter.otlpLogs.protocol: thrift", "exporter.otlpLogs.protocol"),
        ("exporter.otlpMetrics.buckets: [0.1, 0.01]", "exporter.otlpMetrics.buckets"),
        ("exporter.otlpMetrics.endpoint: localhost:4317", "endpoint"),
        ("exporter.otlpMetrics.seriesLimit: 0", "exporter.otlpMetrics.seriesLimit"),
        ("exporter.otlpLogs.queuesize: 5", "queueSize"),
    ],
)
def test_bad_otlp_config_names_the_key(text: str, names: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    lines = str(exc.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith("config: ") and names in lines[0], lines  # one line


def test_otlp_config_defaults_and_keys() -> None:
    cfg, warnings = parse_config(
        "exporter:\n"
        "  otlpMetrics: {enabled: true, protocol: grpc, endpoint: 'http://c:4317', interval: 10s,"
        " buckets: [0.001, 0.01]}\n"
        "  otlpLogs: {enabled: true, batch: 50, queueSize: 500, gzip: false}\n"
    )
    assert warnings == []
    om, ol = cfg.exporter.otlp_metrics, cfg.exporter.otlp_logs
    assert (om.protocol, om.endpoint, om.interval, om.buckets) == (
        "grpc",
        "http://c:4317",
        10 * 10**9,
        [0.001, 0.01],
    )
    assert (ol.protocol, ol.endpoint, ol.batch, ol.queue_size, ol.gzip) == (
        "http/protobuf",
        "http://localhost:4318/v1/logs",
        50,
        500,
        False,
    )
