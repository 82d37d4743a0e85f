"""Roundtrips to metrics, the store, and the exposition, checked against the records and an independent
parser (prometheus_client's text parser reads back what Prometheus would)."""

from __future__ import annotations

import math
import os

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from packetd.agent.storage import OVERFLOW, MetricStore
from packetd.engine import Rule
from packetd.export import remote_write
from packetd.pipeline.metrics import (
    SECONDS_BUCKETS,
    Aggregator,
    PathTemplater,
    RoundtripsToMetrics,
    vm_bucket,
    vm_range,
)
from tests.helpers.golden import CORPUS, run_file

BRO = os.path.join(CORPUS, "http1", "zeek_zeek__bro.org.pcap")


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("/api/v1/users/12345", "/api/v1/users/{id}"),
        ("/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301/items", "/orders/{id}/items"),
        ("/blobs/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "/blobs/{id}"),
        ("/session/Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0", "/session/{id}"),
        ("/static/app.js", "/static/app.js"),
        ("/v2/price/-12.5", "/v2/price/{id}"),
        ("/css/960.css", "/css/960.css"),  # a file name is not an id
        ("/", "/"),
    ],
)
def test_path_templating(path: str, want: str) -> None:
    assert PathTemplater()(path) == want


def test_custom_templates_apply_first() -> None:
    t = PathTemplater([(r"^/v1/orgs/[^/]+", "/v1/orgs/{org}")])
    assert t("/v1/orgs/acme/users/42") == "/v1/orgs/{org}/users/{id}"


@pytest.mark.parametrize(
    ("value", "vmrange"),
    [  # VictoriaMetrics' documented buckets: 18 per decade, (lower, upper]
        (1.0, "8.799e-01...1.000e+00"),
        (1.1, "1.000e+00...1.136e+00"),
        (0.5, "4.642e-01...5.275e-01"),
        (1e-9, "0...1.000e-09"),
        (2e-10, "0...1.000e-09"),
        (1e18, "1.000e+18...+Inf"),
    ],
)
def test_vmrange_buckets(value: float, vmrange: str) -> None:
    assert vm_range(vm_bucket(value)) == vmrange


def _exposition(store: MetricStore) -> dict[str, list]:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(store)
    text = generate_latest(reg).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_metrics_from_a_real_capture_match_its_records() -> None:
    records, _ = run_file(BRO, (Rule(protocol="http", ports=(80,)),))
    proc = RoundtripsToMetrics(
        {"http": {"requireLabels": ["server.address", "request.method", "response.status_code"]}}, ["http"]
    )
    agg = Aggregator()
    for rt in records:
        proc.process(rt, agg)
    store = MetricStore()
    store.merge(agg.take(), 0)
    fams = _exposition(store)
    total = sum(s.value for s in fams["http_requests"] if s.name == "http_requests_total")
    assert (
        total == len(records) == 31
    )  # tshark: 31 requests (tests/test_golden.py explains the 31st response)
    # the histogram's cumulative buckets against the records' own durations
    durations = [rt.duration_ns / 1e9 for rt in records if rt.duration_ns is not None]
    buckets = {
        s.labels["le"]: s.value for s in fams["http_request_duration_seconds"] if s.name.endswith("_bucket")
    }
    for bound in SECONDS_BUCKETS:
        key = repr(bound).removesuffix(".0") if bound.is_integer() else repr(bound)
        assert buckets[key if key in buckets else repr(bound)] == sum(1 for d in durations if d <= bound)
    assert buckets["+Inf"] == len(durations)
    s = next(x for x in fams["http_request_duration_seconds"] if x.name.endswith("_sum"))
    assert math.isclose(s.value, sum(durations), rel_tol=1e-9)
    labels = next(x for x in fams["http_requests"]).labels
    assert labels == {"server_address": "192.150.187.43", "method": "GET", "status_code": "200"}


def test_series_budget_folds_new_label_sets_into_overflow() -> None:
    store = MetricStore(series_limit=3)
    agg = Aggregator()
    for i in range(5):
        agg.inc("http_requests_total", (("path", f"/p{i}"),))
    store.merge(agg.take(), 0)
    fams = _exposition(store)
    values = {s.labels["path"]: s.value for s in fams["http_requests"] if s.name == "http_requests_total"}
    assert values == {"/p0": 1.0, "/p1": 1.0, "/p2": 1.0, OVERFLOW: 2.0}
    assert store.overflowed == {"http_requests_total": 2}


def test_idle_series_expire() -> None:
    store = MetricStore(expired_ns=10)
    agg = Aggregator()
    agg.inc("x_total", (("a", "1"),))
    store.merge(agg.take(), 100)
    agg.inc("x_total", (("a", "2"),))
    store.merge(agg.take(), 105)
    assert store.expire(112) == 1  # a=1 idle for 12 > 10
    assert {s.labels["a"] for s in _exposition(store)["x"]} == {"2"} and store.expired_total == 1


def test_exposition_escapes_label_values() -> None:
    store = MetricStore()
    agg = Aggregator()
    nasty = 'a"b\\c\nd'
    agg.inc("http_requests_total", (("path", nasty),))
    store.merge(agg.take(), 0)
    (sample,) = [s for s in _exposition(store)["http_requests"] if s.name == "http_requests_total"]
    assert sample.labels["path"] == nasty  # the parser reads back exactly what went in


def test_vm_histograms_expose_vmrange_buckets() -> None:
    store = MetricStore()
    agg = Aggregator(vm=True)
    for v in (0.5, 0.5, 1.1):
        agg.observe("http_request_duration_seconds", (("m", "GET"),), v, SECONDS_BUCKETS)
    store.merge(agg.take(), 0)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(store)
    text = generate_latest(reg).decode()
    assert 'http_request_duration_seconds_bucket{m="GET",vmrange="4.642e-01...5.275e-01"} 2.0' in text
    assert 'http_request_duration_seconds_bucket{m="GET",vmrange="1.000e+00...1.136e+00"} 1.0' in text
    assert 'http_request_duration_seconds_count{m="GET"} 3.0' in text


def test_remote_write_body_round_trips_through_protobuf_and_snappy() -> None:
    samples = [([("__name__", "http_requests_total"), ("path", "/a")], 3.0), ([("__name__", "up")], 1.0)]
    body = remote_write.encode(samples, 1_700_000_000_000)
    # snappy block format: a varint of the uncompressed length first (not the framed "sNaPpY" stream)
    assert not body.startswith(b"\xff\x06\x00\x00sNaPpY")
    req = remote_write.decode(body)
    got = [
        ([(lb.name, lb.value) for lb in ts.labels], ts.samples[0].value, ts.samples[0].timestamp)
        for ts in req.timeseries
    ]
    assert got == [(samples[0][0], 3.0, 1_700_000_000_000), (samples[1][0], 1.0, 1_700_000_000_000)]
