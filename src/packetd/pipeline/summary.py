"""The endpoint summary printed when `watch` ends: per (server, protocol, operation, path) count, errors and
latency percentiles.

Latencies go into a log-bucketed histogram (buckets 2% wide, so a reported percentile is within 2% of the
true one) instead of a list: memory per endpoint is bounded whatever the traffic. Paths are templated as
the agent's metrics template them (`/users/123` → `/users/{id}`), so one endpoint is one row, not one row
per id. Endpoints are bounded too (MAX_ENDPOINTS); the rest fold into one "(other)" row, and the table says
how many records and (up to MAX_FOLDED_KEYS) how many distinct endpoints went there.

`table()` renders the rows for a person: columns as wide as their widest value, numbers right-aligned,
full operation names, IPv6 servers as `[addr]:port`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from packetd.pairing.roundtrip import Endpoint, Roundtrip, endpoint_text
from packetd.pipeline.metrics import PathTemplater
from packetd.pipeline.semantics import semantics_of
from packetd.protocols.base import Kind, Message
from packetd.units import format_duration

MAX_ENDPOINTS = 1000  # rows kept; more distinct endpoints than this fold into "(other)"
MAX_FOLDED_KEYS: Final = 10_000  # distinct folded endpoints counted exactly up to here (then "more than")
MAX_PATH: Final = 60  # characters of the path shown
FOLD_EVERY: Final = 1024  # durations an endpoint holds before bucketing them (LatencyHistogram.pending)
MAX_MEMO: Final = 10_000  # raw (server, protocol, operation, path) keys remembered (Summary._memo)
_GROWTH = math.log(1.02)
OTHER = ("(other)", "", "", "")


class LatencyHistogram:
    """Log-bucketed latency histogram; percentiles within 2% relative error.

    Durations are appended to `pending` (what the summary does per record: one list append) and bucketed
    FOLD_EVERY at a time, or when the histogram is read.
    """

    __slots__ = ("_buckets", "_count", "_max", "_min", "pending")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self.pending: list[int] = []  # bounded: folded at FOLD_EVERY
        self._count = 0
        self._min = 0
        self._max = 0

    def add(self, ns: int) -> None:
        pending = self.pending
        pending.append(ns)
        if len(pending) >= FOLD_EVERY:
            self.fold()

    def fold(self) -> None:
        """Bucket the pending durations."""
        pending = self.pending
        if not pending:
            return
        buckets = self._buckets
        log, growth = math.log, _GROWTH
        for ns in pending:
            b = int(log(ns) / growth) if ns > 1 else 0
            buckets[b] = buckets.get(b, 0) + 1
        lo = min(pending)
        if not self._count or lo < self._min:
            self._min = lo
        hi = max(pending)
        self._max = max(self._max, hi)
        self._count += len(pending)
        pending.clear()

    # read (and, merging workers' summaries, pipeline/fanout.py, written) with the pending ones folded in
    @property
    def buckets(self) -> dict[int, int]:
        self.fold()
        return self._buckets

    @property
    def count(self) -> int:
        return self._count + len(self.pending)

    @count.setter
    def count(self, n: int) -> None:
        self.fold()
        self._count = n

    @property
    def min(self) -> int:
        self.fold()
        return self._min

    @min.setter
    def min(self, ns: int) -> None:
        self.fold()
        self._min = ns

    @property
    def max(self) -> int:
        self.fold()
        return self._max

    @max.setter
    def max(self, ns: int) -> None:
        self.fold()
        self._max = ns

    def percentile(self, q: float) -> float:
        self.fold()
        if not self._count:
            return 0.0
        rank = q * self._count
        seen = 0
        for b in sorted(self._buckets):
            seen += self._buckets[b]
            if seen >= rank:
                value = math.exp((b + 0.5) * _GROWTH)
                return min(max(value, self._min), self._max)
        return float(self._max)


class EndpointStats:
    __slots__ = ("count", "errors", "latency")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.latency = LatencyHistogram()


class Summary:
    """Aggregates every record (before display filters) for the exit summary.

    Per record it only looks up (server, protocol, operation, raw path) in a memo of the endpoint that
    key resolved to (templated path, `addr:port` text, folding): the templating runs once per distinct
    raw key, not once per record.
    """

    def __init__(self) -> None:
        self.endpoints: dict[tuple[str, str, str, str], EndpointStats] = {}
        self.kinds: dict[str, int] = dict.fromkeys(Kind.ALL, 0)
        self.folded = 0
        self.folded_keys: set[tuple[str, str, str, str]] = set()  # bounded by MAX_FOLDED_KEYS
        self._template = PathTemplater()
        # raw key → (its endpoint, folded into "(other)"); bounded by MAX_MEMO: raw paths (ids in them)
        # are unbounded by nature, so it is emptied when full and refilled from what comes next
        self._memo: dict[tuple[Endpoint, str, str, str | None], tuple[EndpointStats, bool]] = {}
        self._paths: dict[str, Callable[[Message | None], str | None]] = {}  # protocol → its path getter

    def add(self, rt: Roundtrip) -> None:
        self.kinds[rt.kind] += 1
        req, resp = rt.request, rt.response
        msg = req if req is not None else resp
        assert msg is not None
        protocol = rt.protocol
        path_of = self._paths.get(protocol)
        if path_of is None:
            path_of = self._paths[protocol] = semantics_of(protocol).path
        raw = (rt.server, protocol, msg.operation(), path_of(req))
        hit = self._memo.get(raw)
        if hit is None:
            ep = self._resolve(raw)
        else:
            ep = hit[0]
            if hit[1]:
                self.folded += 1
        ep.count += 1
        if resp is not None:
            if resp.is_error():
                ep.errors += 1
            if req is not None:
                pending = ep.latency.pending
                pending.append(resp.end_ns - req.start_ns)
                if len(pending) >= FOLD_EVERY:
                    ep.latency.fold()

    def _resolve(self, raw: tuple[Endpoint, str, str, str | None]) -> EndpointStats:
        """The endpoint of a raw key seen for the first time since the memo was last emptied (counted as
        folded when it is)."""
        server, protocol, operation, raw_path = raw
        # never the query: the summary leaves the host too (stderr)
        path = self._template(str(raw_path or ""))
        if len(path) > MAX_PATH:
            path = path[: MAX_PATH - 1] + "…"
        key = (endpoint_text(server), protocol, operation, path)
        ep = self.endpoints.get(key)
        folded = False
        if ep is None:
            ep = self._new_endpoint(key)
            folded = key not in self.endpoints  # _new_endpoint (or a subclass's) folded it into "(other)"
        if len(self._memo) >= MAX_MEMO:
            self._memo.clear()
        self._memo[raw] = (ep, folded)
        return ep

    def _new_endpoint(self, key: tuple[str, str, str, str]) -> EndpointStats:
        if len(self.endpoints) >= MAX_ENDPOINTS:
            self.folded += 1
            if len(self.folded_keys) < MAX_FOLDED_KEYS:
                self.folded_keys.add(key)
            key = OTHER
            ep = self.endpoints.get(key)
            if ep is not None:
                return ep
        ep = self.endpoints[key] = EndpointStats()
        return ep

    def rows(self) -> list[tuple[tuple[str, str, str, str], EndpointStats]]:
        return sorted(self.endpoints.items(), key=lambda kv: (-kv[1].count, kv[0]))

    def table(self, max_rows: int) -> list[str]:
        """The endpoint table's lines (header first), the busiest `max_rows` endpoints, then what was left
        out and why."""
        rows = self.rows()
        if not rows:
            return []
        shown = rows[:max_rows]
        head = ("SERVER", "PROTO", "OPERATION", "PATH", "COUNT", "ERRORS", "P50", "P90", "P99")
        cells = [head] + [_cells(key, st) for key, st in shown]
        widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
        lines = [_line(row, widths) for row in cells]
        if len(rows) > max_rows:
            lines.append(f"... and {plural(len(rows) - max_rows, 'more endpoint')}")
        if self.folded:
            n = len(self.folded_keys)
            distinct = f"more than {n}" if n >= MAX_FOLDED_KEYS else str(n)
            lines.append(
                f"({plural(self.folded, 'record')} of {distinct} endpoints folded into '(other)': the "
                f"summary keeps {MAX_ENDPOINTS} distinct endpoints, the first seen)"
            )
        return lines


def plural(n: int, word: str) -> str:
    """`1 connection`, `2 connections` (the word is made plural by its last word: `more endpoint`)."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_RIGHT = frozenset({4, 5, 6, 7, 8})  # COUNT .. P99: numbers, right-aligned


def _cells(key: tuple[str, str, str, str], st: EndpointStats) -> tuple[str, ...]:
    server, proto, op, path = key
    lat = st.latency
    p = [format_duration(lat.percentile(q)) if lat.count else "-" for q in (0.5, 0.9, 0.99)]
    return (server, proto or "-", op or "-", path or "-", str(st.count), str(st.errors), *p)


def _line(row: tuple[str, ...], widths: list[int]) -> str:
    out = [
        c.rjust(w) if i in _RIGHT else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
    ]
    return " ".join(out).rstrip()
