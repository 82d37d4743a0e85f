"""Spans and the roundtrip filter: reproducible ids, inherited trace context, status, attributes, sampling."""

from __future__ import annotations

import os

import pytest

from packetd.engine import Rule
from packetd.pairing.roundtrip import Roundtrip
from packetd.pipeline.filter import FilterConfigError, RoundtripsFilter
from packetd.pipeline.spans import RoundtripsToTraces
from packetd.protocols.base import Kind, TraceContext
from packetd.protocols.http1.messages import Request, Response
from tests.helpers.golden import CORPUS, run_file

PIPELINED = os.path.join(CORPUS, "http1", "zeek_zeek__pipelined-requests.pcap")


def rt(path: str = "/x", status: int = 200, start: int = 1_000, end: int = 5_000, server: tuple[str, int] = ("10.0.0.2", 80),
       trace: TraceContext | None = None, kind: str = Kind.ROUNDTRIP) -> Roundtrip:  # fmt: skip
    req = Request(
        start, start + 10, 100, 0, "GET", path, "HTTP/1.1", "svc", b"\r\n", 100, 0, False, False, trace
    )
    resp = (
        Response(end - 10, end, 50, 0, status, "", "HTTP/1.1", b"\r\n", 50, 7, False, False)
        if kind != Kind.UNANSWERED
        else None
    )
    return Roundtrip("http", kind, ("10.0.0.1", 40000), server, req, resp, 0)


def test_spans_from_a_real_capture_are_reproducible_and_carry_the_records_fields() -> None:
    proc = RoundtripsToTraces()
    first, _ = run_file(PIPELINED, (Rule(protocol="http", ports=(80,)),))
    again, _ = run_file(PIPELINED, (Rule(protocol="http", ports=(80,)),))
    spans = [proc.process(r) for r in first]
    assert spans == [proc.process(r) for r in again]  # a replay gives the same spans, ids included
    assert len({(s.trace_id, s.span_id) for s in spans if s}) == len(first)
    for record, span in zip(first, spans, strict=True):
        j = record.to_json()
        assert span is not None
        assert span.name == j["operation"] == "GET"
        assert (span.start_ns, span.end_ns) == (record.start_ns, record.end_ns)
        assert span.attributes["http.request.method"] == j["request"]["method"]
        assert span.attributes["url.path"] == j["request"]["path"]
        assert span.attributes["http.response.status_code"] == j["response"]["status_code"]
        assert span.attributes["server.port"] == j["server"]["port"] == 80
        assert span.attributes["client.address"] == j["client"]["ip"]
        assert span.parent_span_id is None and not span.error  # no traceparent on the wire: a new trace
        assert span.service == f"http:{j['server']['ip']}:80"


def test_traceparent_makes_the_span_a_child_of_the_caller() -> None:
    ctx = TraceContext(
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736", parent_span_id="00f067aa0ba902b7", sampled=True
    )
    span = RoundtripsToTraces().process(rt(trace=ctx))
    assert span is not None
    assert span.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736 and span.parent_span_id == 0x00F067AA0BA902B7
    assert span.remote_parent and span.span_id not in (0, span.parent_span_id)


def test_status_and_service_names() -> None:
    proc = RoundtripsToTraces({"services": {"10.0.0.2:80": "checkout"}})
    ok = proc.process(rt(status=404))
    err = proc.process(rt(status=503))
    lost = proc.process(rt(kind=Kind.UNANSWERED))
    assert ok is not None and err is not None and lost is not None
    assert not ok.error  # a 4xx is the client's mistake, not the server's
    assert err.error and err.status_description == "503"
    assert lost.error and lost.status_description == "no response"
    assert ok.service == "checkout"
    assert proc.process(rt(server=("10.9.9.9", 8080))).service == "http:10.9.9.9:8080"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown key"):
        RoundtripsToTraces({"service": {}})


def test_filter_include_exclude_and_duration() -> None:
    f = RoundtripsFilter(
        {
            "include": {"servers": ["10.0.0.0/8", ":8080"]},
            "exclude": {"statuses": ["404"]},
            "minDuration": "2us",
        }
    )
    assert f.accept(rt())  # 10.0.0.2:80, 200, 4 µs
    assert not f.accept(rt(status=404))
    assert not f.accept(rt(server=("192.168.1.1", 80)))
    assert f.accept(rt(server=("192.168.1.1", 8080)))
    assert not f.accept(rt(end=1_500))  # 0.5 µs
    assert f.kept == 2 and f.dropped == {"excluded": 1, "not_included": 1, "too_fast": 1}


def test_sampling_keeps_errors_and_slow_ones_and_a_fraction_of_the_rest_by_trace() -> None:
    f = RoundtripsFilter({"sampling": {"keepErrors": True, "slowerThan": "1ms", "ratio": 0.1}})
    assert f.accept(rt(status=500)) and f.accept(rt(end=3_000_000))
    kept = sum(f.accept(rt(start=1_000 + i * 100_000, end=2_000 + i * 100_000)) for i in range(20_000))
    assert 1800 <= kept <= 2200  # 10 % ± 1 %: the hash of the trace id is uniform
    # one trace is kept or dropped whole: every roundtrip with the same trace context decides alike
    ctx = TraceContext(
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736", parent_span_id="00f067aa0ba902b7", sampled=True
    )
    decisions = {f.accept(rt(trace=ctx, start=1_000 + i, end=2_000 + i)) for i in range(50)}
    assert len(decisions) == 1


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"include": {"protocol": ["http"]}}, "unknown key(s) protocol"),
        ({"include": {"kinds": ["reply"]}}, "unknown kind(s) reply"),
        ({"sampling": {"ratio": 1.5}}, "not between 0 and 1"),
        ({"minDuration": "fast"}, "invalid duration 'fast'"),
        ({"include": {"servers": ["10.0.0.0/33"]}}, "servers"),
    ],
)
def test_filter_config_errors(cfg: dict, message: str) -> None:
    with pytest.raises(FilterConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RoundtripsFilter(cfg)
