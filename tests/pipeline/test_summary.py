"""The exit summary's latency percentiles against exact nearest-rank percentiles of the same samples."""

from __future__ import annotations

import math
import random

import pytest

from packetd.pairing.roundtrip import Roundtrip
from packetd.pipeline.filters import DisplayFilter
from packetd.pipeline.summary import MAX_ENDPOINTS, OTHER, LatencyHistogram, Summary
from packetd.protocols.base import Kind
from packetd.protocols.http1.messages import Request, Response


def exact(samples: list[int], q: float) -> int:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_within_two_percent(seed: int) -> None:
    rng = random.Random(seed)
    samples = [int(rng.lognormvariate(13, 1.5)) + 1 for _ in range(rng.randint(1, 5000))]
    h = LatencyHistogram()
    for s in samples:
        h.add(s)
    for q in (0.5, 0.9, 0.99):
        truth = exact(samples, q)
        assert abs(h.percentile(q) - truth) <= 0.021 * truth, (q, h.percentile(q), truth)


def _rt(path: str, status: int, dur: int) -> Roundtrip:
    req = Request(0, 1, 10, 0, "GET", path, "HTTP/1.1", None, b"\r\n", 10, 0, False, False)
    resp = Response(dur, dur, 10, 0, status, "", "HTTP/1.1", b"\r\n", 10, 0, False, False)
    return Roundtrip("http", Kind.ROUNDTRIP, ("10.0.0.1", 1), ("10.0.0.2", 80), req, resp, 0)


def test_endpoints_are_bounded_and_the_rest_folded() -> None:
    s = Summary()
    for i in range(MAX_ENDPOINTS + 50):
        s.add(_rt(f"/p{i}", 200, 1000))
    assert len(s.endpoints) == MAX_ENDPOINTS + 1
    assert s.endpoints[OTHER].count == 50 and s.folded == 50


def test_errors_counted_per_endpoint_and_display_filter() -> None:
    s = Summary()
    for status in (200, 500, 503, 404):
        s.add(_rt("/x", status, 5_000_000))
    ((_key, ep),) = s.rows()
    assert ep.count == 4 and ep.errors == 2  # HTTP >= 500 only
    f = DisplayFilter(errors_only=True)
    assert [f.accept(_rt("/x", c, 1)) for c in (200, 500, 404)] == [False, True, False]
    f = DisplayFilter(slower_than_ns=1_000_000)
    assert [f.accept(_rt("/x", 200, d)) for d in (999_999, 1_000_000)] == [False, True]


def test_paths_templated_and_folded_rows_counted_with_the_reason() -> None:
    s = Summary()
    for i in range(40):
        s.add(_rt(f"/users/{1000 + i}", 200, 1000))  # one endpoint, not 40
    ((key, ep),) = s.rows()
    assert key[3] == "/users/{id}" and ep.count == 40
    s = Summary()
    for i in range(MAX_ENDPOINTS + 30):
        s.add(_rt(f"/p{i}", 200, 1000))
    s.add(_rt("/p1005", 200, 1000))  # a folded endpoint again: 31 records, 30 endpoints
    last = s.table(25)[-1]
    assert f"31 records of 30 endpoints folded into '(other)': the summary keeps {MAX_ENDPOINTS}" in last


def test_table_full_names_v6_brackets_numbers_right_aligned() -> None:
    rt = _rt("/x", 200, 5_000_000)
    v6 = Roundtrip("http", Kind.ROUNDTRIP, ("::1", 1), ("::1", 33080), rt.request, rt.response, 0)
    s = Summary()
    s.add(v6)
    for _ in range(12):
        s.add(rt)
    head, *rows = s.table(25)
    assert rows[1].startswith("[::1]:33080 ") and rows[0].startswith("10.0.0.2:80 ")
    count_end = head.index("COUNT") + len("COUNT")
    assert rows[0][:count_end].endswith(" 12") and rows[1][:count_end].endswith(" 1")
    assert all(ln == ln.rstrip() for ln in (head, *rows))
