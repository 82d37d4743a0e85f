"""The live table driven through Textual's own harness (App.run_test + Pilot), on records of real captures.

The records are those of two corpus captures (Redis pings and an HTTP page load) decoded by the engine;
what the table must show is worked out here from their JSON records, independently of aggregate.py.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from typing import Any

import pytest
from rich.text import Text
from textual.widgets import DataTable, Static

from packetd.engine import Rule
from packetd.top.aggregate import Aggregator
from packetd.top.app import Board, RecordsScreen, TopApp
from packetd.units import format_duration
from tests.helpers.golden import CORPUS, as_json, run_file

REDIS = f"{CORPUS}/redis/zeek_zeek__redis-50-pings.pcap"
HTTP = f"{CORPUS}/http1/zeek_zeek__bro.org.pcap"


def _records() -> list[tuple[dict[str, Any], int]]:
    out = []
    for path, rule in ((REDIS, Rule("redis", (6379,))), (HTTP, Rule("http", (80,)))):
        rts, _ = run_file(path, (rule,))
        out += list(zip(as_json(rts), [rt.end_ns for rt in rts], strict=True))
    return out


@pytest.fixture(scope="module")
def records() -> list[tuple[dict[str, Any], int]]:
    return _records()


def _board(records: list[tuple[dict[str, Any], int]]) -> Board:
    agg = Aggregator(window_ns=None)
    for rec, end in records:
        agg.add(rec, end)
    return Board(agg)


def _expected(records: list[tuple[dict[str, Any], int]], key: Any) -> dict[str, tuple[int, int, int | None]]:
    """key → (count, errors, nearest-rank p99) straight from the JSON records."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec, _ in records:
        groups[key(rec)].append(rec)
    out = {}
    for k, recs in groups.items():
        lat = sorted(r["duration_ns"] for r in recs if r["duration_ns"] is not None)
        p99 = lat[math.ceil(0.99 * len(lat)) - 1] if lat else None
        out[k] = (len(recs), sum(r["error"] for r in recs), p99)
    return out


def _server(rec: dict[str, Any]) -> str:
    return f"{rec['server']['ip']}:{rec['server']['port']}"


def _rows(app: TopApp) -> list[dict[str, str]]:
    """The table's rows as {column title: cell text}; the key column is "KEY"."""
    table = app.query_one(DataTable)
    titles = ["KEY"] + [c.label.plain for c in list(table.columns.values())[1:]]
    out = []
    for i in range(table.row_count):
        texts = [c.plain if isinstance(c, Text) else str(c) for c in table.get_row_at(i)]
        out.append(dict(zip(titles, texts, strict=True)))
    return out


def test_keys_change_grouping_and_sorting_and_open_records(records: list[tuple[dict[str, Any], int]]) -> None:
    by_server = _expected(records, _server)
    by_op = _expected(records, lambda r: f"{r['protocol']} {r['operation']}")
    assert len(by_server) == 2 and len(by_op) >= 3  # the two captures: two servers, several operations

    async def scenario() -> None:
        app = TopApp(_board(records), "server", "count", refresh_s=3600)  # redrawn by keys only
        async with app.run_test(size=(160, 40)) as pilot:
            rows = _rows(app)
            # by count: most records first, and the numbers as the JSON records say
            want = sorted(by_server, key=lambda k: -by_server[k][0])
            assert [r["KEY"] for r in rows] == want
            for r in rows:
                count, errors, p99 = by_server[r["KEY"]]
                assert (int(r["COUNT"]), int(r["ERR"])) == (count, errors)
                assert r["P99"] == format_duration(p99)
            await pilot.press("s", "s", "s", "s")  # count → errors → error-ratio → p50 → p99
            assert app.sort_by == "p99"
            want = sorted(by_server, key=lambda k: -(by_server[k][2] or 0))
            assert [r["KEY"] for r in _rows(app)] == want
            assert want != sorted(by_server, key=lambda k: -by_server[k][0])  # the order really changed
            await pilot.press("S", "S", "S", "S")  # back to count
            await pilot.press("g", "g")  # server → client → operation
            assert app.grouping == "operation"
            rows = _rows(app)
            assert {r["KEY"]: int(r["COUNT"]) for r in rows} == {k: v[0] for k, v in by_op.items()}
            assert [int(r["COUNT"]) for r in rows] == sorted((v[0] for v in by_op.values()), reverse=True)
            # Enter on the first row (PING, the most frequent): its recent records
            first = rows[0]["KEY"]
            await pilot.press("enter")
            assert isinstance(app.screen, RecordsScreen)
            text = str(app.screen.query_one("#records", Static).content)
            lines = text.splitlines()
            ours = [rec for rec, _ in records if f"{rec['protocol']} {rec['operation']}" == first]
            assert len(lines) == min(len(ours), 20)
            assert all(f" {first.split(' ', 1)[1]} " in line for line in lines)
            last = ours[-1]
            assert f"{last['client']['ip']}:{last['client']['port']} → {_server(last)}" in lines[-1]
            await pilot.press("escape")
            assert not isinstance(app.screen, RecordsScreen)
            await pilot.press("r")  # the footer's key for the same
            assert isinstance(app.screen, RecordsScreen) and app.screen.key == first
            await pilot.press("escape")
            await pilot.press("q")
        assert app.return_code == 0

    asyncio.run(scenario())


def test_narrow_screen_and_refresh_of_new_records(records: list[tuple[dict[str, Any], int]]) -> None:
    half = len(records) // 2

    async def scenario() -> None:
        board = _board(records[:half])
        app = TopApp(board, "server", "count", refresh_s=0.05)
        async with app.run_test(size=(80, 24)) as pilot:
            assert "PROTO" not in _rows(app)[0]  # 80 columns: the narrow layout
            before = sum(int(r["COUNT"]) for r in _rows(app))
            assert before == half
            with board.lock:  # what the capture thread does
                for rec, end in records[half:]:
                    board.aggregator.add(rec, end)
            await pilot.pause(0.3)  # a few refresh intervals
            assert sum(int(r["COUNT"]) for r in _rows(app)) == len(records)
            await pilot.press("p")  # paused: new records do not show
            with board.lock:
                board.aggregator.add(*records[0])
            await pilot.pause(0.3)
            assert sum(int(r["COUNT"]) for r in _rows(app)) == len(records)
            assert "PAUSED" in str(app.query_one("#status", Static).content)
            await pilot.press("p")
            await pilot.pause(0.2)
            assert sum(int(r["COUNT"]) for r in _rows(app)) == len(records) + 1
            assert app.is_running
            board.error = "capture stopped: OSError: interface went down"  # the capture thread's failure
            await pilot.pause(0.3)
            assert not app.is_running  # the app ends by itself (the command prints the error)

    asyncio.run(scenario())
