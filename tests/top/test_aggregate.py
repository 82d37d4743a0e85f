"""top's aggregation, on records in the JSON view's shape, against values worked out by hand."""

from __future__ import annotations

import re
from typing import Any

import pytest

from packetd.top import aggregate as agg
from packetd.top.aggregate import Aggregator, percentile, sparkline

S = 1_000_000_000
MS = 1_000_000


def rec(
    server: str = "10.0.0.1",
    port: int = 80,
    client: str = "10.0.0.9",
    op: str = "GET",
    path: str | None = "/",
    duration: int | None = 10 * MS,
    error: bool = False,
    protocol: str = "http",
    processes: tuple[dict[str, Any] | None, dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    c: dict[str, Any] = {"ip": client, "port": 40000}
    s: dict[str, Any] = {"ip": server, "port": port}
    if processes is not None:
        c["process"], s["process"] = processes
    return {
        "protocol": protocol,
        "kind": "roundtrip",
        "client": c,
        "server": s,
        "operation": op,
        "status": "500" if error else "200",
        "error": error,
        "end_time": "2024-05-01T12:00:01.000000000Z",
        "duration_ns": duration,
        "request": {"path": path, "target": path} if path is not None else {"command": op},
        "response": {},
    }


def test_nearest_rank_percentiles_by_hand() -> None:
    # ten values: p50 is rank ceil(5.0) = 5 → 50; p99 rank ceil(9.9) = 10 → 100; p10 rank 1 → 10
    values = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 100
    assert percentile(values, 0.1) == 10
    # three values: p50 rank ceil(1.5) = 2 → 7; p99 rank ceil(2.97) = 3 → 1000
    assert percentile([5, 7, 1000], 0.5) == 7
    assert percentile([5, 7, 1000], 0.99) == 1000
    assert percentile([], 0.5) is None


def test_rows_per_server_with_hand_computed_numbers() -> None:
    a = Aggregator(window_ns=None)
    for i, ms in enumerate([70, 10, 100, 30, 50, 20, 90, 40, 80, 60]):  # shuffled 10..100
        a.add(rec(duration=ms * MS, error=i in (2, 5)), end_ns=S + i)
    for ms in (1000, 5, 7):
        a.add(rec(server="10.0.0.2", port=6379, duration=ms * MS, protocol="redis", op="GET"), end_ns=2 * S)
    rows = a.table("server", "count")
    assert [r.key for r in rows] == ["10.0.0.1:80", "10.0.0.2:6379"]
    first, second = rows
    assert (first.count, first.errors, first.error_ratio) == (10, 2, 0.2)
    assert (first.p50_ns, first.p99_ns, first.max_ns) == (50 * MS, 100 * MS, 100 * MS)
    assert (second.count, second.errors) == (3, 0)
    assert (second.p50_ns, second.p99_ns, second.max_ns) == (7 * MS, 1000 * MS, 1000 * MS)
    assert first.protocols == ("http",) and second.protocols == ("redis",)
    assert not first.sampled
    # sorted by p99 / max: the redis server (1 s) first; by errors: the http one (2 against 0)
    assert [r.key for r in a.table("server", "p99")] == ["10.0.0.2:6379", "10.0.0.1:80"]
    assert [r.key for r in a.table("server", "max")] == ["10.0.0.2:6379", "10.0.0.1:80"]
    assert [r.key for r in a.table("server", "errors")] == ["10.0.0.1:80", "10.0.0.2:6379"]
    # by p50: 50 ms against 7 ms
    assert [r.key for r in a.table("server", "p50")] == ["10.0.0.1:80", "10.0.0.2:6379"]


def test_error_ratio_sort_prefers_ratio_over_count() -> None:
    a = Aggregator(window_ns=None)
    for i in range(10):  # 3 errors of 10: 0.3
        a.add(rec(server="10.0.0.1", error=i < 3), end_ns=S)
    for i in range(2):  # 1 of 2: 0.5
        a.add(rec(server="10.0.0.2", error=i == 0), end_ns=S)
    assert [r.key for r in a.table("server", "error-ratio")] == ["10.0.0.2:80", "10.0.0.1:80"]
    assert [r.key for r in a.table("server", "errors")] == ["10.0.0.1:80", "10.0.0.2:80"]


def test_groupings_client_operation_path_process() -> None:
    a = Aggregator(window_ns=None)
    nginx = {"pid": 812, "comm": "nginx"}
    curl = {"pid": 90, "comm": "curl"}
    a.add(rec(client="10.0.0.7", op="GET", path="/users/123?token=abc", processes=(curl, nginx)), S)
    a.add(rec(client="10.0.0.7", op="POST", path="/users/456", processes=(curl, None)), S)
    a.add(rec(client="10.0.0.8", op="GET", path=None, protocol="redis", processes=(None, None)), S)
    assert {r.key: r.count for r in a.table("client", "count")} == {"10.0.0.7": 2, "10.0.0.8": 1}
    assert {r.key: r.count for r in a.table("operation", "count")} == {
        "http GET": 1,
        "http POST": 1,
        "redis GET": 1,
    }
    # the agent's templating, and never the query
    assert {r.key: r.count for r in a.table("path", "count")} == {"/users/{id}": 2, "(no path)": 1}
    procs = {r.key: r.count for r in a.table("process", "count")}
    assert procs == {"nginx[812]": 1, "curl[90] (client)": 1, "(unknown)": 1}
    b = Aggregator(window_ns=None)
    b.add(rec(), S)  # no `process` keys at all: attribution was off
    assert [r.key for r in b.table("process", "count")] == ["(attribution off)"]


def test_sliding_window_expires_old_slices() -> None:
    # a 20 s window has 20 slices of 1 s; at now = 25.5 s the window is slices 6..25 (times >= 6 s)
    a = Aggregator(window_ns=20 * S)
    for t, ms in ((0.5, 900), (5.9, 800), (6.0, 30), (10.2, 10), (25.5, 20)):
        a.add(rec(duration=ms * MS), end_ns=int(t * S))
    (row,) = a.table("server", "count")
    assert row.count == 3  # 0.5 s and 5.9 s are out
    assert row.max_ns == 30 * MS  # the 900 ms and 800 ms ones went with their slices
    assert row.p50_ns == 20 * MS  # sorted 10, 20, 30: rank ceil(1.5) = 2
    assert len(row.spark) == agg.SLICES
    # slices 6, 10 and 25 hold 30, 10 and 20 ms; slot 6 is the first of the window
    assert row.spark[0] == 30 * MS and row.spark[4] == 10 * MS and row.spark[19] == 20 * MS
    assert sum(v is not None for v in row.spark) == 3
    # time passes without records (idle ticks): at 46 s everything is gone, and so is the row
    a.advance(46 * S)
    assert a.table("server", "count") == []
    # a record older than the window when it arrives is counted as late, not shown
    a.add(rec(), end_ns=1 * S)
    assert a.late == 1 and a.table("server", "count") == []


def test_sampled_percentiles_beyond_the_sample_bound() -> None:
    a = Aggregator(window_ns=None)
    n = agg.SAMPLES + 10
    for i in range(n):  # latencies 1..n ns: the first 10 fall out of the ring
        a.add(rec(duration=i + 1), end_ns=S)
    (row,) = a.table("server", "count")
    assert row.count == n and row.sampled
    assert row.max_ns == n  # max is exact from the slices
    # the ring holds 11..n (2048 values): p50 rank 1024 → 10 + 1024
    assert row.p50_ns == 10 + 1024


def test_rows_are_bounded_and_fold_into_other() -> None:
    a = Aggregator(window_ns=None)
    for i in range(agg.MAX_ROWS + 5):
        a.add(rec(client=f"10.1.{i // 256}.{i % 256}"), end_ns=S)
    rows = a.table("client", "count")
    assert len(rows) == agg.MAX_ROWS + 1
    other = next(r for r in rows if r.key == agg.OTHER)
    assert other.count == 5 and a.folded["client"] == 5
    assert rows[0].key == agg.OTHER  # 5 records: the biggest row


def test_recent_records_ring_per_row() -> None:
    a = Aggregator(window_ns=None)
    for i in range(agg.RECENT + 3):
        a.add(rec(path=f"/p{i}", duration=(i + 1) * MS), end_ns=S)
    lines = a.recent("server", "10.0.0.1:80")
    assert len(lines) == agg.RECENT
    assert "/p3 " in lines[0] and f"/p{agg.RECENT + 2} " in lines[-1]  # the oldest three were dropped
    assert "10.0.0.9:40000 → 10.0.0.1:80 GET" in lines[-1]
    assert a.recent("server", "nope") == []


def test_sparkline_levels() -> None:
    # 10 → lowest, 80 → highest, 45 → (45 - 10) * 7 // 70 = 3
    assert sparkline([10, None, 45, 80]) == "▁ ▄█"
    assert sparkline([5, 5]) == "▁▁"
    assert sparkline([None, None]) == "  "


def test_window_must_hold_its_slices() -> None:
    with pytest.raises(ValueError):
        Aggregator(window_ns=5)


def test_all_of_time_slices_double_to_cover_the_capture() -> None:
    # no window: slices start 1 s wide; records at 0.5 s, 10 s and 45 s span slots 0..45 > 20, so the width
    # doubles to 2 s (0..22, still > 20 slots apart? 22 - 0 = 22 ≥ 20) and to 4 s (0..11): 12 slices
    a = Aggregator(window_ns=None)
    for t, ms in ((0.5, 10), (10.0, 30), (45.0, 50)):
        a.add(rec(duration=ms * MS), end_ns=int(t * S))
    (row,) = a.table("server", "count")
    assert row.count == 3 and row.max_ns == 50 * MS
    assert len(row.spark) == 12  # slots 0..11 of 4 s
    assert (row.spark[0], row.spark[2], row.spark[11]) == (10 * MS, 30 * MS, 50 * MS)  # 10 s → slot 2
    assert sum(v is not None for v in row.spark) == 3


def test_text_table_fits_the_width() -> None:
    from packetd.top.render import table_text

    a = Aggregator(window_ns=None)
    a.add(rec(path="/segment" * 11, duration=568_450_000), end_ns=S)  # 88 characters, not an id
    a.add(rec(server="2001:db8::1", port=443, duration=None), end_ns=S)
    for width in (80, 160):
        lines = table_text(a.table("path", "count"), "path", width)
        assert all(len(line) <= width for line in lines), width
        assert lines[0].startswith("PATH ")
        assert ("PROTO" in lines[0]) == (width >= 100)  # narrow: no protocol column
        row = next(line for line in lines if line.startswith("/segment"))
        assert "…" in row and "568.45ms" in row
    lines = table_text(a.table("server", "count"), "server", 80)
    a.add(rec(error=True), end_ns=S)
    colored = table_text(a.table("server", "count"), "server", 80, color=True)
    plain = [re.sub(r"\x1b\[\d+m", "", line) for line in colored]
    assert plain == table_text(a.table("server", "count"), "server", 80)  # the same widths
    assert colored[0].startswith("\x1b[1m")
    assert "\x1b[31m    1\x1b[0m" in next(line for line in colored if line.startswith("10.0.0.1:80"))
    v6 = next(line for line in lines if line.startswith("[2001:db8::1]:443"))
    assert v6.split()[1:7] == ["1", "0", "0.0", "-", "-", "-"]  # no latency: dashes
