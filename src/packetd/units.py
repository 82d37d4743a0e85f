"""Parsing and formatting of durations and sizes given by users (flags, config)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def parse_duration(text: str) -> int:
    """Go-style duration ("1m30s", "250ms", "2h") or a bare number of seconds → nanoseconds."""
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    try:
        seconds = float(s)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise ValueError(f"negative duration '{text}'")
        return int(seconds * 1e9)
    pos = 0
    total = 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS_NS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(
            f"invalid duration '{text}': use a number with a unit, e.g. 500ms, 30s, 5m, 1h30m "
            "(a bare number is seconds)"
        )
    return int(total)


def format_duration(ns: int | float) -> str:
    """Short human form: 850ns, 12.3µs, 4.56ms, 1.23s, 2m3s."""
    if ns < 1_000:
        return f"{int(ns)}ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f}ms"
    if ns < 60_000_000_000:
        return f"{ns / 1_000_000_000:.2f}s"
    minutes, rest = divmod(int(ns) // 1_000_000_000, 60)
    return f"{minutes}m{rest}s"


def format_size(n: int) -> str:
    if n < 1024:
        return f"{n}B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f}K"
    if n < 1024**3:
        return f"{n / 1024 / 1024:.1f}M"
    return f"{n / 1024**3:.1f}G"
