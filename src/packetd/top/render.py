"""top's rows as text (a plain table that fits a width) and as one JSON document (pure).

The JSON document of `packetd top --format json` (one object, then a newline):

    {
      "grouping": "server",            the --group-by
      "sort_by": "count",              the --sort-by
      "window_ns": null,               the window (null: the whole capture)
      "records": 1234,                 records aggregated (after watch's display filters)
      "late": 0,                       records that arrived older than the window (not in any row)
      "folded": 0,                     records of this grouping folded into "(other)" (MAX_ROWS)
      "rows": [                        sorted as the table
        {"key": "127.0.0.1:6379", "protocols": ["redis"], "count": 100, "errors": 2,
         "error_ratio": 0.02, "p50_ns": 51000, "p99_ns": 230000, "max_ns": 410000,
         "sampled": false, "sparkline_ns": [null, 48000, ...]}       mean latency per slice, oldest first
      ]
    }

Latencies are nanoseconds; `p50_ns`/`p99_ns`/`max_ns` are null in a row whose records carried none
(one-way messages, unanswered requests). docs/top.schema.json pins the shape (the tests validate it).
"""

from __future__ import annotations

from typing import Any

from packetd.top.aggregate import SLICES, Aggregator, RowView, sparkline
from packetd.units import format_duration

# (title, width) of the fixed columns, after the key
COLUMNS = (("PROTO", 6), ("COUNT", 7), ("ERR", 5), ("ERR%", 5), ("P50", 8), ("P99", 8), ("MAX", 8))
# at this width and more, the sparkline shows every slice; below, the last NARROW_SPARK and no PROTO
# column, so that an 80-column terminal still gives the key (a path, an address) 26 characters
WIDE = 100
NARROW_SPARK = 7  # "LATENCY" fits over it
MIN_KEY = 16
_BOLD, _RED, _RESET = "\x1b[1m", "\x1b[31m", "\x1b[0m"


def _lat(ns: int | None) -> str:
    return format_duration(ns) if ns is not None else "-"


def cells(row: RowView) -> tuple[str, ...]:
    """The fixed columns' text of one row (the table and the Textual app show the same)."""
    proto = ",".join(row.protocols)
    ratio = f"{100 * row.error_ratio:.1f}" if row.count else "-"
    mark = "~" if row.sampled else ""  # percentiles over the most recent SAMPLES only
    return (
        proto,
        str(row.count),
        str(row.errors),
        ratio,
        mark + _lat(row.p50_ns),
        mark + _lat(row.p99_ns),
        _lat(row.max_ns),
    )


def spark_width(width: int) -> int:
    return SLICES if width >= WIDE else NARROW_SPARK


def columns(width: int) -> tuple[tuple[str, int], ...]:
    """The fixed columns shown at this width."""
    return COLUMNS if width >= WIDE else COLUMNS[1:]


def key_width(width: int) -> int:
    fixed = sum(w + 1 for _, w in columns(width)) + spark_width(width) + 1
    return max(MIN_KEY, width - fixed)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table_text(rows: list[RowView], grouping: str, width: int, color: bool = False) -> list[str]:
    """The table as lines of at most `width` characters (at least MIN_KEY for the key), no trailing blanks;
    `color`: a bold header and error counts in red (the widths are those of the plain text)."""
    kw, sw, cols = key_width(width), spark_width(width), columns(width)
    head = [grouping.upper().ljust(kw)] + [t.rjust(w) for t, w in cols] + ["LATENCY".ljust(sw)]
    lines = [" ".join(head).rstrip()]
    if color:
        lines[0] = _BOLD + lines[0] + _RESET
    skip = len(COLUMNS) - len(cols)
    err = [t for t, _ in cols].index("ERR") + 1  # its place among the line's parts
    for row in rows:
        parts = [_fit(row.key, kw).ljust(kw)]
        for text, (_, w) in zip(cells(row)[skip:], cols, strict=True):
            parts.append(_fit(text, w).rjust(w))
        if color and row.errors:
            parts[err] = _RED + parts[err] + _RESET
        parts.append(sparkline(row.spark[-sw:]))
        lines.append(" ".join(parts).rstrip())
    return lines


def document(aggregator: Aggregator, grouping: str, sort_by: str) -> dict[str, Any]:
    """The JSON document (module docstring)."""
    rows = aggregator.table(grouping, sort_by)
    return {
        "grouping": grouping,
        "sort_by": sort_by,
        "window_ns": aggregator.window_ns,
        "records": aggregator.records,
        "late": aggregator.late,
        "folded": aggregator.folded[grouping],
        "rows": [r.to_json() for r in rows],
    }
