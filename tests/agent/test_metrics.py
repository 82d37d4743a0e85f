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
    TRUNCATED,
    Aggregator,
    MetricsConfigError,
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
    )  # tshark: 31 requests (tests/protocols/http1/test_golden.py explains the 31st response)
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


# -- buckets (issue 10) ------------------------------------------------------------------------------------
REDIS_PINGS = os.path.join(CORPUS, "redis", "zeek_zeek__redis-50-pings.pcap")


def _one_two_five(lo: float, hi: float) -> list[float]:
    """The 1-2.5-5 series from `lo` to `hi` (the issue's shape), built here independently of the code."""
    out = [round(m * 10.0**e, 12) for e in range(-7, 3) for m in (1, 2.5, 5)]
    return [b for b in out if lo <= b <= hi]


def _le(text: str, family: str) -> list[float]:
    fams = {f.name: f.samples for f in text_string_to_metric_families(text)}
    bounds = {s.labels["le"] for s in fams[family] if s.name.endswith("_bucket")}
    return sorted(float(b) for b in bounds if b != "+Inf")


def _store_text(records: list, proc: RoundtripsToMetrics, store: MetricStore | None = None) -> str:
    agg = Aggregator()
    for rt in records:
        proc.process(rt, agg)
    store = store or MetricStore()
    store.merge(agg.take(), 0)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(store)
    return generate_latest(reg).decode()


def test_default_buckets_start_at_25us_and_64_bytes() -> None:
    records, _ = run_file(REDIS_PINGS, (Rule(protocol="redis", ports=(6379,)),))
    text = _store_text(records, RoundtripsToMetrics({}, ["redis"]))
    # 25, 50, 100, 250, 500 µs, 1, 2.5, 5 ms, ... 25 s, and 60 s last (a minute is the longest wire wait)
    want = [*_one_two_five(25e-6, 25.0), 60.0]
    assert _le(text, "redis_request_duration_seconds") == pytest.approx(want)
    assert _le(text, "redis_request_body_bytes") == [64.0 * 4**i for i in range(12)]
    # every roundtrip of the capture is in the bucket its own duration says (the capture's PINGs answer in
    # tens to hundreds of µs: with the old 1 ms first bucket all of them sat in one)
    durations = sorted(rt.duration_ns / 1e9 for rt in records if rt.duration_ns is not None)
    fams = {f.name: f.samples for f in text_string_to_metric_families(text)}
    cum: dict[float, float] = {}
    for sample in fams["redis_request_duration_seconds"]:
        if "le" in sample.labels:
            le = float(sample.labels["le"])
            cum[le] = cum.get(le, 0.0) + sample.value
    assert durations and durations[len(durations) // 2] < 0.001
    for bound, n in cum.items():
        assert n == sum(1 for d in durations if d <= bound)
    assert len({n for b, n in cum.items() if b <= 0.001}) > 1  # sub-millisecond resolution


def test_buckets_are_configurable_per_protocol() -> None:
    records, _ = run_file(REDIS_PINGS, (Rule(protocol="redis", ports=(6379,)),))
    proc = RoundtripsToMetrics(
        {"redis": {"buckets": {"duration": ["30us", "100us", 0.001], "bytes": [8, 16]}}}, ["redis", "http"]
    )
    text = _store_text(records, proc)
    assert _le(text, "redis_request_duration_seconds") == pytest.approx([30e-6, 100e-6, 0.001])
    assert _le(text, "redis_response_body_bytes") == [8.0, 16.0]
    assert proc.buckets_for("http")[0][0] == 25e-6  # other protocols keep the defaults


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        ({"duration": [0.1, 0.01]}, "increase strictly"),
        ({"duration": ["5 parsecs"]}, "invalid duration"),
        ({"latency": [1]}, "expected a map with any of duration, bytes, rows"),
        ({"bytes": []}, "a list of 1 to 64"),
        ({"bytes": [True]}, "is not a number"),
    ],
)
def test_bad_buckets_are_refused_with_the_key(buckets: dict, message: str) -> None:
    with pytest.raises(MetricsConfigError, match=r"roundtripstometrics\.redis\.buckets") as exc:
        RoundtripsToMetrics({"redis": {"buckets": buckets}})
    assert message in str(exc.value)


def test_a_reload_that_changes_the_buckets_restarts_the_histogram() -> None:
    store = MetricStore()
    agg = Aggregator()
    agg.observe("x_seconds", (), 0.5, (1.0,))
    store.merge(agg.take(), 0)
    agg.observe("x_seconds", (), 0.5, (0.1, 1.0))
    store.merge(agg.take(), 1)
    (fam,) = [f for f in text_string_to_metric_families(_text(store)) if f.name == "x_seconds"]
    got = {s.labels.get("le", s.name): s.value for s in fam.samples}
    assert got == {"0.1": 0.0, "1": 1.0, "+Inf": 1.0, "x_seconds_count": 1.0, "x_seconds_sum": 0.5}


# -- bounded labels and series (issue 14) ------------------------------------------------------------------
def _text(store: MetricStore) -> str:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(store)
    return generate_latest(reg).decode()


def _http_rt(path: str, i: int = 0):  # type: ignore[no-untyped-def]
    from packetd.pairing.roundtrip import Roundtrip
    from packetd.protocols.base import Kind
    from packetd.protocols.http1.messages import Request, Response

    req = Request(
        start_ns=i, end_ns=i + 1, size=100, flags=0, method="GET", target=path, version="HTTP/1.1",
        host="web", header_block=b"", header_bytes=90, body_bytes=0, chunked=False, close=False,
    )  # fmt: skip
    resp = Response(
        start_ns=i + 50_000, end_ns=i + 60_000, size=120, flags=0, status_code=404, reason="Not Found",
        version="HTTP/1.1", header_block=b"", header_bytes=100, body_bytes=20, chunked=False, close=False,
    )  # fmt: skip
    return Roundtrip(
        protocol="http", kind=Kind.ROUNDTRIP, client=("10.0.0.2", 5000), server=("10.0.0.1", 80),
        request=req, response=resp,
    )  # fmt: skip


def test_long_label_values_are_cut_marked_and_counted() -> None:
    proc = RoundtripsToMetrics({}, ["http"])
    long_path = "/a," + "é" * 3000  # 2-byte characters: the cut falls on a character boundary
    store = MetricStore()
    text = _store_text([_http_rt(long_path), _http_rt(long_path), _http_rt("/short")], proc, store)
    paths = {
        s.labels["path"]
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if "path" in s.labels
    }
    (cut,) = paths - {"/short"}
    assert cut.endswith(TRUNCATED) and long_path.startswith(cut.removesuffix(TRUNCATED))
    assert 256 - 1 <= len(cut.encode()) <= 256
    assert store.truncated == {"path": 2}


def test_paths_are_templated_before_they_count_against_the_budget() -> None:
    store = MetricStore(label_limits={"path": 2})
    _store_text([_http_rt(f"/users/{i}") for i in range(50)], RoundtripsToMetrics({}, ["http"]), store)
    assert store.label_overflowed == {} and store.overflowed == {}
    assert {lab for lab in store._counters["http_requests_total"]} == {
        (("server_address", "10.0.0.1"), ("server_port", "80"), ("method", "GET"), ("path", "/users/{id}"),
         ("status", "404"), ("error", "false")),
    }  # fmt: skip


def test_label_budget_folds_only_that_label() -> None:
    store = MetricStore(label_limits={"path": 3})
    text = _store_text(
        [_http_rt(f"/scan/w{i}x") for i in range(10)], RoundtripsToMetrics({}, ["http"]), store
    )
    got = {
        (s.labels["path"], s.labels["method"]): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "http_requests_total"
    }
    assert got == {
        ("/scan/w0x", "GET"): 1,
        ("/scan/w1x", "GET"): 1,
        ("/scan/w2x", "GET"): 1,
        (OVERFLOW, "GET"): 7,
    }
    assert store.label_overflowed == {"path": 7 * 4}  # the counter and three histograms, 7 roundtrips each


def test_protocol_budget_and_byte_budget_fold_whole_label_sets() -> None:
    agg = Aggregator()
    for proto in ("http", "redis"):
        for i in range(5):
            agg.inc(f"{proto}_requests_total", (("path", f"/p{i}"),))
    store = MetricStore(protocol_limits={"redis": 2}, label_limits={})
    store.merge(agg.take(), 0)
    assert len(store._counters["http_requests_total"]) == 5
    assert set(store._counters["redis_requests_total"]) == {
        (("path", "/p0"),),
        (("path", "/p1"),),
        (("path", OVERFLOW),),
    }
    assert store.overflowed == {"redis_requests_total": 3}
    # bytes: each series costs its estimated line; a budget of ~2.5 lines admits 2 (the overflow one fits too)
    small = MetricStore(label_limits={}, max_bytes=1)
    one = MetricStore(label_limits={})
    agg.inc("http_requests_total", (("path", "/p0"),))
    one.merge(agg.take(), 0)
    small.max_bytes = int(one.bytes * 2.5)
    for i in range(5):
        agg.inc("http_requests_total", (("path", f"/p{i}"),))
    small.merge(agg.take(), 0)
    assert len(small._counters["http_requests_total"]) == 3 and small.overflowed == {"http_requests_total": 3}
    assert len(_text(small).encode()) <= small.max_bytes + 200  # HELP and TYPE lines beyond the estimate


def test_expiry_releases_the_budget() -> None:
    store = MetricStore(label_limits={"path": 1}, expired_ns=10)
    agg = Aggregator()
    agg.inc("http_requests_total", (("path", "/a"),))
    store.merge(agg.take(), 0)
    spent = store.bytes
    store.expire(100)
    assert store.bytes == 0 < spent
    agg.inc("http_requests_total", (("path", "/b"),))
    store.merge(agg.take(), 100)
    assert set(store._counters["http_requests_total"]) == {(("path", "/b"),)}  # not folded: /a is gone


# -- OpenMetrics, exemplars, gzip (issue 10) ---------------------------------------------------------------
def _negotiated(
    exemplars: bool, accept: str | None, encoding: str | None
) -> tuple[bytes, dict[str, str], list]:
    from packetd.agent.storage import negotiate

    records, _ = run_file(REDIS_PINGS, (Rule(protocol="redis", ports=(6379,)),))
    agg = Aggregator()
    proc = RoundtripsToMetrics({}, ["redis"], exemplars=exemplars)
    for rt in records:
        proc.process(rt, agg)
    store = MetricStore()
    store.merge(agg.take(), 0)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(store)
    body, headers = negotiate(reg, accept, encoding)
    return body, headers, records


OPENMETRICS = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"  # what Prometheus sends


def test_openmetrics_exemplars_name_the_span_of_a_roundtrip_in_that_bucket() -> None:
    import gzip

    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

    from packetd.pipeline.spans import RoundtripsToTraces

    body, headers, records = _negotiated(True, OPENMETRICS, "gzip, deflate")
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    spans = {}
    tracer = RoundtripsToTraces({})
    for rt in records:
        span = tracer.process(rt)
        if span is not None:
            spans[f"{span.trace_id:032x}"] = (span, rt)
    seen = 0
    for fam in parse_om(text):  # the strict OpenMetrics parser: the exposition is valid OpenMetrics
        lower = 0.0
        for s in fam.samples:
            if s.name == "redis_request_duration_seconds_bucket":
                upper = float(s.labels["le"])
                if s.exemplar is not None:
                    span, rt = spans[s.exemplar.labels["trace_id"]]
                    assert s.exemplar.labels["span_id"] == f"{span.span_id:016x}"
                    assert s.exemplar.value == rt.duration_ns / 1e9 and lower < s.exemplar.value <= upper
                    seen += 1
                lower = 0.0 if s.labels["le"] == "+Inf" else upper
            else:
                assert s.exemplar is None  # only the duration histograms carry them
    assert seen >= 2  # the PINGs spread over more than one bucket


def test_text_format_without_traces_has_no_exemplars_and_passes_promtool() -> None:
    import shutil
    import subprocess

    body, headers, _ = _negotiated(False, "text/plain", None)
    assert headers == {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    om, _, _ = _negotiated(False, OPENMETRICS, "identity")
    assert b" # {" not in om and b"redis_request_duration_seconds_bucket" in om
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian's prometheus package)")
    # promtool (2.42) parses the text format only; OpenMetrics is checked by the strict parser above and by
    # a real Prometheus scraping it in the e2e tests (Prometheus asks for OpenMetrics first)
    run = subprocess.run(["promtool", "check", "metrics"], check=False, input=body, capture_output=True)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize(
    ("encoding", "gzipped"),
    [("gzip", True), ("br;q=1.0, gzip;q=0.5", True), ("gzip;q=0", False), ("", False)],
)
def test_gzip_only_when_the_scraper_asks(encoding: str, gzipped: bool) -> None:
    import gzip

    body, headers, _ = _negotiated(False, None, encoding)
    plain, _, _ = _negotiated(False, None, None)
    assert ("Content-Encoding" in headers) == gzipped
    assert (gzip.decompress(body) if gzipped else body) == plain


def test_vmrange_histograms_are_served_as_text_even_to_an_openmetrics_scraper() -> None:
    from packetd.agent.storage import negotiate

    store = MetricStore()
    agg = Aggregator(vm=True)
    agg.observe("http_request_duration_seconds", (("m", "GET"),), 0.5, SECONDS_BUCKETS)
    store.merge(agg.take(), 0)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(store)
    body, headers = negotiate(reg, OPENMETRICS, None)
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4") and b"vmrange=" in body


def test_a_worker_delta_is_bounded_too_and_its_folds_are_counted() -> None:
    agg = Aggregator(max_keys=3)
    for i in range(10):
        agg.inc("http_requests_total", (("path", f"/p{i}"),))
        agg.observe("http_request_duration_seconds", (("path", f"/p{i}"),), 0.001, SECONDS_BUCKETS)
    delta = agg.take()
    assert len(delta["counters"]) == len(delta["histograms"]) == 4  # 3 and the overflow key
    store = MetricStore()
    store.merge(delta, 0)
    assert store._counters["http_requests_total"][(("path", OVERFLOW),)] == 7
    assert store.overflowed == {"http_requests_total": 7, "http_request_duration_seconds": 7}
