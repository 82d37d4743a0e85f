"""Per-protocol metric labels and span attributes, from real captures of every protocol in the corpus.

The truth is each record's own JSON (what the decoders report and the golden tests pin against tshark):
the default labels and span attributes must carry exactly those values.
"""

from __future__ import annotations

from collections import Counter

import pytest

from packetd.engine import Rule
from packetd.pipeline.metrics import Aggregator, RoundtripsToMetrics
from packetd.pipeline.spans import RoundtripsToTraces
from packetd.protocols.base import Kind
from packetd.protocols.registry import REGISTRY
from tests.helpers.golden import manifest, run_file

CORPUS_DIR = {"http": "http1"}
SYSTEM = {
    "redis": ("db.system.name", "redis"),
    "mysql": ("db.system.name", "mysql"),
    "postgresql": ("db.system.name", "postgresql"),
    "mongodb": ("db.system.name", "mongodb"),
    "kafka": ("messaging.system", "kafka"),
    "amqp": ("messaging.system", "rabbitmq"),
    "grpc": ("rpc.system", "grpc"),
    "http": ("network.protocol.name", "http"),
    "http2": ("network.protocol.name", "http"),
    "dns": ("network.protocol.name", "dns"),
}


def records_of(proto: str) -> list:
    out = []
    for row in manifest(CORPUS_DIR.get(proto, proto)):
        recs, _ = run_file(row.path, (Rule(protocol=proto, ports=row.ports),))
        out += [r for r in recs if r.protocol == proto]
    return out


@pytest.mark.parametrize("proto", REGISTRY.names())
def test_default_labels_carry_the_records_values(proto: str) -> None:
    records = [r for r in records_of(proto) if r.kind != Kind.HANDSHAKE]
    assert records, f"the corpus gives no {proto} records"
    proc = RoundtripsToMetrics({}, [proto])
    agg = Aggregator()
    for rt in records:
        proc.process(rt, agg)
    counts = {
        labels: v for (name, labels), v in agg.take()["counters"].items() if name == f"{proto}_requests_total"
    }
    assert sum(counts.values()) == len(records)
    names = [k for k, _ in next(iter(counts))]
    keys = REGISTRY[proto].semantics.default_labels
    assert names[:2] == ["server_address", "server_port"] and len(names) == len(keys)
    # every label set is what the records say (server, status, error, and the protocol's own fields)
    want: Counter[tuple[str, ...]] = Counter()
    for rt in records:
        j = rt.to_json()
        row = [j["server"]["ip"], str(j["server"]["port"])]
        for key in keys[2:]:
            if key == "response.status":
                row.append(j["status"] or "")
            elif key == "response.error":
                row.append("true" if j["error"] else "false")
            else:
                _label, getter = REGISTRY[proto].semantics.labels[key]
                value = getter(rt.request, rt.response)
                if key == "request.path":
                    value = proc.templater(str(value or ""))
                row.append("" if value is None else str(value))
        want[tuple(row)] += 1
    got = Counter({tuple(v for _, v in labels): int(n) for labels, n in counts.items()})
    assert got == want


@pytest.mark.parametrize("proto", REGISTRY.names())
def test_spans_carry_the_system_and_the_error_status(proto: str) -> None:
    records = records_of(proto)
    proc = RoundtripsToTraces()
    spans = [(rt, proc.process(rt)) for rt in records]
    spans = [(rt, s) for rt, s in spans if s is not None]
    assert spans
    key, value = SYSTEM[proto]
    for rt, span in spans:
        j = rt.to_json()
        assert span.attributes[key] == value
        assert span.name == (j["operation"] or proto) or proto in ("mysql", "postgresql", "redis", "mongodb")
        assert span.error == (j["error"] or j["kind"] == "unanswered")
        assert span.attributes["server.port"] == j["server"]["port"]
        if j["trace"]:
            assert f"{span.trace_id:032x}" == j["trace"]["trace_id"]


def test_mongodb_command_is_the_command_label_not_service() -> None:
    proc = RoundtripsToMetrics(
        {"mongodb": {"requireLabels": ["request.command", "request.source"]}}, ["mongodb"]
    )
    agg = Aggregator()
    recs = [r for r in records_of("mongodb") if r.kind == Kind.ROUNDTRIP]
    for rt in recs:
        proc.process(rt, agg)
    labels = {
        dict(lab)["command"] for (name, lab) in agg.take()["counters"] if name == "mongodb_requests_total"
    }
    assert labels == {r.to_json()["request"]["command"] for r in recs}


def test_grpc_status_label_is_the_grpc_status_name() -> None:
    recs = [r for r in records_of("grpc") if r.kind == Kind.ROUNDTRIP]
    # the Go-compatible label (the default label set says `status`, the same value)
    proc = RoundtripsToMetrics({"grpc": {"requireLabels": ["response.status_code"]}}, ["grpc"])
    agg = Aggregator()
    for rt in recs:
        proc.process(rt, agg)
    statuses = {
        dict(lab)["status_code"] for (name, lab) in agg.take()["counters"] if name == "grpc_requests_total"
    }
    assert statuses == {r.to_json()["status"] or "" for r in recs}
    assert not any(s.isdigit() for s in statuses if s)  # not the HTTP :status (reference §18.13)


def test_row_and_affected_row_metrics_from_database_answers() -> None:
    for proto in ("mysql", "postgresql"):
        recs = records_of(proto)
        proc = RoundtripsToMetrics({}, [proto])
        agg = Aggregator()
        for rt in recs:
            proc.process(rt, agg)
        taken = agg.take()
        rows_name = "mysql_response_resultset_rows" if proto == "mysql" else "postgresql_response_rows"
        observed = sum(h[2] for (name, _), h in taken["histograms"].items() if name == rows_name)
        want = sum(
            1
            for r in recs
            if r.response is not None
            and getattr(r.response, "rows", None) is not None
            and r.kind != Kind.HANDSHAKE
        )
        assert observed == want
        layouts = {str(h[3]) for (name, _), h in taken["histograms"].items() if name == rows_name}
        assert all("1000000.0" in lay for lay in layouts)  # row buckets, not byte buckets (§18.21)


@pytest.mark.parametrize("proto", REGISTRY.names())
def test_every_protocol_has_the_same_label_shape(proto: str) -> None:
    """Issue 10: one `status` and one `error` label everywhere (HTTP and HTTP/2 had neither `error` nor
    `status`, only the Go name `status_code`), so one query counts every protocol's errors."""
    records = [r for r in records_of(proto) if r.kind != Kind.HANDSHAKE]
    agg = Aggregator()
    proc = RoundtripsToMetrics({}, [proto])
    for rt in records:
        proc.process(rt, agg)
    label_sets = [
        labels for (name, labels), _ in agg.take()["counters"].items() if name == f"{proto}_requests_total"
    ]
    assert {tuple(k for k, _ in labels)[-2:] for labels in label_sets} == {("status", "error")}
    errors = sum(1 for rt in records if rt.error)
    flagged = Counter(dict(labels)["error"] for labels in label_sets)
    assert ("true" in flagged) == (errors > 0)
    # the Go-compatible name stays selectable where the Go implementation had it
    if "response.status_code" in REGISTRY[proto].semantics.labels:
        go = RoundtripsToMetrics({proto: {"requireLabels": ["response.status_code"]}}, [proto])
        go.process(records[0], agg)
        ((_, labels),) = agg.take()["counters"]
        assert [k for k, _ in labels] == ["status_code"]


def test_otel_naming_serves_http1_and_http2_from_one_metric_and_every_database_from_another() -> None:
    """metricsStorage.naming: otel — the semconv names and attributes (the OTLP metrics exporter's, from
    pipeline/otlp_metrics.py), checked against the corpus records."""
    from packetd.agent.storage import MetricStore
    from packetd.pipeline.otlp_metrics import OtlpMetricsAggregator

    proc = RoundtripsToMetrics({}, REGISTRY.names(), naming="otel")
    otlp = OtlpMetricsAggregator()
    agg = Aggregator()
    answered: Counter[str] = Counter()
    for proto in ("http", "http2", "grpc", "redis", "mysql", "postgresql", "mongodb", "kafka", "amqp", "dns"):
        for rt in records_of(proto):
            proc.process(rt, agg)
            otlp.process(rt)
            if rt.kind == Kind.ROUNDTRIP and rt.response is not None:
                answered[proto] += 1
    store = MetricStore(label_limits={})
    store.merge(agg.take(), 0)
    hists = store._hists

    def counts(metric: str, label: str) -> Counter[str]:
        out: Counter[str] = Counter()
        for labels, h in hists[metric].items():
            out[dict(labels)[label]] += h.count
        return out

    http = counts("http_server_request_duration_seconds", "network_protocol_version")
    assert http["2"] == answered["http2"] > 0
    assert sum(n for v, n in http.items() if v != "2") == answered["http"] > 0
    assert counts("db_client_operation_duration_seconds", "db_system_name") == Counter(
        {s: answered[s] for s in ("redis", "mysql", "postgresql", "mongodb")}
    )
    assert counts("messaging_client_operation_duration_seconds", "messaging_system") == Counter(
        {"kafka": answered["kafka"], "rabbitmq": answered["amqp"]}
    )
    assert sum(counts("rpc_server_call_duration_seconds", "rpc_system_name").values()) == answered["grpc"]
    assert sum(counts("dns_lookup_duration_seconds", "dns_question_name").values()) == answered["dns"]
    assert not any(name.endswith("_requests_total") for name in store._counters)  # no Go names mixed in
    # error_type is set exactly where the operation failed: for HTTP, a status of 500 or more
    for labels in hists["http_server_request_duration_seconds"]:
        lab = dict(labels)
        assert ("error_type" in lab) == (int(lab["http_response_status_code"]) >= 500)
    # one place decides the attributes: the same series as the OTLP metrics exporter's, dots as underscores
    ours = {
        (name, labels)
        for name, series in hists.items()
        if name.endswith("_duration_seconds")
        for labels in series
    }
    theirs = {
        (m.replace(".", "_") + "_seconds", tuple((k.replace(".", "_"), str(v)) for k, v in attrs))
        for m, attrs in otlp.take()["series"]
    }
    assert ours == theirs
