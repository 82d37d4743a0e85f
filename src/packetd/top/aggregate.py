"""`packetd top`'s numbers: records grouped into rows over a sliding window, sorted (pure: no clock, no I/O).

Theory of operation. Every record comes in as its redacted JSON view (`Roundtrip.to_json()`, the view
protocols/redact.py decides; nothing here reads a raw field) with its end time in packet nanoseconds. It
goes into one row of every grouping at once — server, client, operation, path, process — so a key that
changes the grouping shows a full window immediately instead of starting from nothing.

A row keeps, for the window `W`:

* `SLICES` time slices of width `W / SLICES` (a ring keyed by slice number): count, errors, the sum and
  number of latencies and the largest one. Count, errors, error ratio and max are exact over the slices
  inside the window; the sparkline is the mean latency of each slice, oldest to newest.
* the last `SAMPLES` (end time, latency) pairs: p50 and p99 are the nearest-rank percentiles (the value
  at rank ceil(q * n) of the n sorted latencies) of the samples inside the window — exact while a row's
  window holds at most `SAMPLES` latencies, else over the most recent `SAMPLES` (the row says `sampled`).
* the last `RECENT` records, as one line of text each (built from the redacted view), for the row's
  detail view.

The window slides with the newest time seen (a record's end time, or `advance()` from the live loop's
idle ticks), so a file and a live capture are aggregated alike. `window_ns=None` is one window over
everything (a file's final table): its slices start 1 s wide and double, merging pairs, whenever the
first to the newest record spans more than SLICES of them, so the sparkline covers the whole capture.

Bounds: `MAX_ROWS` rows per grouping — a record whose key would be one more is counted in the grouping's
`(other)` row and in `folded` (per grouping) — so the memory is at most 5 × (MAX_ROWS + 1) rows of
about 2 × SAMPLES × 8 bytes of samples (typed arrays), SLICES small tuples and RECENT lines of at most
`MAX_LINE` characters: ~40 KiB a row, 40 MiB in the worst case whatever the traffic (bench/top_memory.py
fills every grouping and every ring: 39.6 MiB held).
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packetd.pipeline.metrics import PathTemplater
from packetd.units import format_duration

GROUPINGS = ("server", "client", "operation", "path", "process")
SORTS = ("count", "errors", "error-ratio", "p50", "p99", "max")
SLICES = 20  # time slices per window: the sliding step (W/20) and the sparkline's width
FIRST_SLICE_NS = 1_000_000_000  # all of time (a file): the first slice width, doubled as the span grows
SAMPLES = 2048  # latencies kept per row for percentiles: exact up to this many in a window
RECENT = 20  # recent records kept per row for its detail view
MAX_ROWS = 200  # rows per grouping: one per server/client/... beyond this folds into "(other)"
MAX_KEY = 80  # characters of a row's key (a long path or statement-like operation is cut, marked "…")
MAX_LINE = 200  # characters of one recent-record line
OTHER = "(other)"
NO_PATH = "(no path)"
UNKNOWN = "(unknown)"
NO_PROCESSES = "(attribution off)"
SPARK = "▁▂▃▄▅▆▇█"
_DETAIL_FIELDS = ("target", "statement", "query", "key", "topic", "collection", "exchange", "queue")


def percentile(sorted_values: list[int], q: float) -> int | None:
    """Nearest rank: the value at rank ceil(q * n) (1-based) of n sorted values; None when there are none."""
    n = len(sorted_values)
    if not n:
        return None
    rank = max(1, math.ceil(q * n))
    return sorted_values[min(rank, n) - 1]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _endpoint(ep: Mapping[str, Any]) -> str:
    ip = str(ep.get("ip"))
    return f"[{ip}]:{ep.get('port')}" if ":" in ip else f"{ip}:{ep.get('port')}"


def _process_text(proc: Mapping[str, Any]) -> str:
    return f"{proc.get('comm')}[{proc.get('pid')}]"


def process_key(rec: Mapping[str, Any]) -> str:
    """The process on this host behind a record: the server's when it is local, else the client's
    (marked `(client)`); `(unknown)` when neither is known (not on this host, or closed before the lookup:
    attribution says null, never guesses), `(attribution off)` when it was not asked."""
    server, client = rec["server"], rec["client"]
    if "process" not in server and "process" not in client:
        return NO_PROCESSES
    if server.get("process"):
        return _process_text(server["process"])
    if client.get("process"):
        return _process_text(client["process"]) + " (client)"
    return UNKNOWN


class KeyMaker:
    """A record's key in each grouping (the path templated by the agent's templating, pipeline/metrics)."""

    def __init__(self, templater: PathTemplater | None = None) -> None:
        self._template = templater if templater is not None else PathTemplater()

    def path(self, rec: Mapping[str, Any]) -> str:
        req = rec.get("request") or {}
        path = req.get("path") if isinstance(req, dict) else None
        if not isinstance(path, str) or not path:
            return NO_PATH
        return self._template(path.split("?", 1)[0])  # never the query: it is neither a row nor safe

    def keys(self, rec: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
        """(server, client, "protocol operation", path, process), in GROUPINGS order."""
        return (
            _endpoint(rec["server"]),
            str(rec["client"].get("ip")),
            f"{rec.get('protocol')} {rec.get('operation')}",  # a Redis GET is not an HTTP GET
            self.path(rec),
            process_key(rec),
        )


def record_line(rec: Mapping[str, Any]) -> str:
    """One recent record as text: time, peers, operation and what it was about, status, latency."""
    clock = str(rec.get("end_time", ""))[11:26]  # HH:MM:SS.ffffff of the RFC 3339 time
    req = rec.get("request") or rec.get("response") or {}
    detail = ""
    if isinstance(req, dict):
        for name in _DETAIL_FIELDS:
            value = req.get(name)
            if isinstance(value, str) and value:
                detail = " " + value
                break
    dur = rec.get("duration_ns")
    latency = format_duration(dur) if isinstance(dur, int) else "-"
    status = rec.get("status") if rec.get("status") is not None else rec.get("kind")
    mark = " ERROR" if rec.get("error") else ""
    line = (
        f"{clock} {_endpoint(rec['client'])} → {_endpoint(rec['server'])} {rec.get('operation')}{detail} "
        f"{status} {latency}{mark}"
    )
    return _cut(line, MAX_LINE)


@dataclass(frozen=True, slots=True, kw_only=True)
class RowView:
    """One row of the table, computed for one moment."""

    key: str
    protocols: tuple[str, ...]
    count: int
    errors: int
    p50_ns: int | None
    p99_ns: int | None
    max_ns: int | None
    sampled: bool  # the percentiles are over the most recent SAMPLES latencies, not all of the window
    spark: tuple[int | None, ...]  # mean latency per slice, oldest first (None: no latency in it)

    @property
    def error_ratio(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "protocols": list(self.protocols),
            "count": self.count,
            "errors": self.errors,
            "error_ratio": round(self.error_ratio, 6),
            "p50_ns": self.p50_ns,
            "p99_ns": self.p99_ns,
            "max_ns": self.max_ns,
            "sampled": self.sampled,
            "sparkline_ns": list(self.spark),
        }


def sparkline(values: Iterable[int | None]) -> str:
    """Eight levels from the smallest to the largest value shown; a blank where a slice had none."""
    vals = list(values)
    present = [v for v in vals if v is not None]
    if not present:
        return " " * len(vals)
    lo, hi = min(present), max(present)
    span = hi - lo
    out = []
    for v in vals:
        if v is None:
            out.append(" ")
        else:
            out.append(SPARK[(v - lo) * (len(SPARK) - 1) // span] if span else SPARK[0])
    return "".join(out)


class Row:
    """One group's window (see the module docstring)."""

    __slots__ = ("_ends", "_lat", "_n", "protocols", "recent", "slices")

    def __init__(self) -> None:
        # slice number → [count, errors, latency sum, latencies, max latency]
        self.slices: dict[int, list[int]] = {}
        self._ends = array("q")
        self._lat = array("q")
        self._n = 0  # latencies ever added: the ring's next index is _n % SAMPLES
        self.recent: deque[str] = deque(maxlen=RECENT)
        self.protocols: dict[str, None] = {}  # insertion-ordered set; at most one per protocol

    def add(self, slot: int, end_ns: int, duration: int | None, error: bool) -> None:
        s = self.slices.get(slot)
        if s is None:
            s = self.slices[slot] = [0, 0, 0, 0, 0]
        s[0] += 1
        if error:
            s[1] += 1
        if duration is None:
            return
        s[2] += duration
        s[3] += 1
        s[4] = max(s[4], duration)
        if len(self._lat) < SAMPLES:
            self._ends.append(end_ns)
            self._lat.append(duration)
        else:
            i = self._n % SAMPLES
            self._ends[i] = end_ns
            self._lat[i] = duration
        self._n += 1

    def halve(self) -> None:
        """Slices twice as wide: pairs merge (counts and sums add, the max is the larger)."""
        merged: dict[int, list[int]] = {}
        for slot, s in self.slices.items():
            m = merged.get(slot // 2)
            if m is None:
                merged[slot // 2] = list(s)
            else:
                m[0] += s[0]
                m[1] += s[1]
                m[2] += s[2]
                m[3] += s[3]
                m[4] = max(m[4], s[4])
        self.slices = merged

    def expire(self, oldest_slot: int) -> None:
        for slot in [k for k in self.slices if k < oldest_slot]:
            del self.slices[slot]

    def view(self, key: str, first_slot: int, last_slot: int, since_ns: int | None) -> RowView:
        count = errors = latencies = 0
        top: int | None = None
        spark: list[int | None] = []
        for slot in range(first_slot, last_slot + 1):
            s = self.slices.get(slot)
            if s is None:
                spark.append(None)
                continue
            count += s[0]
            errors += s[1]
            latencies += s[3]
            if s[3]:
                top = s[4] if top is None else max(top, s[4])
            spark.append(s[2] // s[3] if s[3] else None)
        lat = self._lat
        if since_ns is None:
            window = sorted(lat)
        else:
            ends = self._ends
            window = sorted(lat[i] for i in range(len(lat)) if ends[i] >= since_ns)
        return RowView(
            key=key,
            protocols=tuple(self.protocols),
            count=count,
            errors=errors,
            p50_ns=percentile(window, 0.5),
            p99_ns=percentile(window, 0.99),
            max_ns=top,
            sampled=latencies > len(window),
            spark=tuple(spark),
        )


SORT_KEYS: dict[str, Callable[[RowView], tuple[float, ...]]] = {
    "count": lambda r: (r.count, r.errors),
    "errors": lambda r: (r.errors, r.count),
    "error-ratio": lambda r: (r.error_ratio, r.errors),
    "p50": lambda r: (r.p50_ns if r.p50_ns is not None else -1, r.count),
    "p99": lambda r: (r.p99_ns if r.p99_ns is not None else -1, r.count),
    "max": lambda r: (r.max_ns if r.max_ns is not None else -1, r.count),
}


def sort_rows(rows: Iterable[RowView], by: str) -> list[RowView]:
    """Largest first by `by` (then by count or errors), ties by key: the order is total and stable."""
    key = SORT_KEYS[by]
    return sorted(sorted(rows, key=lambda r: r.key), key=key, reverse=True)


class Aggregator:
    """Every grouping's rows over a sliding window of `window_ns` (None: all of time)."""

    def __init__(self, window_ns: int | None, keys: KeyMaker | None = None) -> None:
        if window_ns is not None and window_ns < SLICES:
            raise ValueError(f"window must be at least {SLICES} ns")
        self.window_ns = window_ns
        # all of time: slices start at 1 s and double (merging pairs) whenever the span outgrows SLICES
        self._slice_ns = window_ns // SLICES if window_ns is not None else FIRST_SLICE_NS
        self._first_ns: int | None = None
        self._keys = keys if keys is not None else KeyMaker()
        self.rows: dict[str, dict[str, Row]] = {g: {} for g in GROUPINGS}
        self.folded: dict[str, int] = dict.fromkeys(GROUPINGS, 0)
        self.now_ns: int | None = None
        self.records = 0
        self.late = 0

    def _slot(self, ts_ns: int) -> int:
        return ts_ns // self._slice_ns

    def _grow(self) -> None:
        """All of time: double the slices until first to newest fits SLICES ((t // w) // 2 == t // 2w)."""
        assert self._first_ns is not None and self.now_ns is not None
        while self._slot(self.now_ns) - self._slot(self._first_ns) >= SLICES:
            self._slice_ns *= 2
            for rows in self.rows.values():
                for row in rows.values():
                    row.halve()

    def advance(self, now_ns: int) -> None:
        """Time passed without a record (a live capture's idle tick): the window slides on."""
        if self.now_ns is None or now_ns > self.now_ns:
            self.now_ns = now_ns

    def add(self, rec: Mapping[str, Any], end_ns: int) -> None:
        """One record (its redacted JSON view) that ended at `end_ns` (packet time)."""
        self.records += 1
        self.advance(end_ns)
        if self.window_ns is None:
            if self._first_ns is None or end_ns < self._first_ns:
                self._first_ns = end_ns
            self._grow()
        slot = self._slot(end_ns)
        if slot < self._span()[0]:
            self.late += 1  # older than the window already (a record held back): it would expire at once
            return
        duration = rec.get("duration_ns")
        error = bool(rec.get("error"))
        line = record_line(rec)
        protocol = str(rec.get("protocol"))
        for grouping, key in zip(GROUPINGS, self._keys.keys(rec), strict=True):
            row = self._row(grouping, _cut(key, MAX_KEY))
            row.add(slot, end_ns, duration if isinstance(duration, int) else None, error)
            row.recent.append(line)
            row.protocols[protocol] = None

    def _row(self, grouping: str, key: str) -> Row:
        rows = self.rows[grouping]
        row = rows.get(key)
        if row is None:
            if len(rows) >= MAX_ROWS:
                self.folded[grouping] += 1
                key = OTHER
                row = rows.get(key)
            if row is None:
                row = rows[key] = Row()
        return row

    def _span(self) -> tuple[int, int, int | None]:
        """The window's first and last slice and the oldest end time inside it (None: all)."""
        if self.now_ns is None:
            return 0, 0, None
        if self.window_ns is None:
            assert self._first_ns is not None
            return self._slot(self._first_ns), self._slot(self.now_ns), None
        last = self._slot(self.now_ns)
        first = last - SLICES + 1
        return first, last, first * self._slice_ns

    def table(self, grouping: str, sort_by: str) -> list[RowView]:
        """The rows of `grouping` that have records in the window, sorted by `sort_by`."""
        first, last, since = self._span()
        views = []
        rows = self.rows[grouping]
        for key in list(rows):
            row = rows[key]
            row.expire(first)
            if not row.slices:
                del rows[key]  # nothing left in the window: the row goes (and frees its place)
                continue
            views.append(row.view(key, first, last, since))
        return sort_rows(views, sort_by)

    def recent(self, grouping: str, key: str) -> list[str]:
        """The row's most recent records, newest last (empty when the row is gone)."""
        row = self.rows[grouping].get(key)
        return list(row.recent) if row is not None else []
