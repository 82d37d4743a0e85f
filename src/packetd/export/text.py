"""Aligned, optionally coloured text lines for a person at a terminal, one record per line.

The layout takes the terminal's width (asked for every line, so a resized window is followed) and the
data: each column is as wide as the widest value it has shown so far, up to a cap, and never narrower
again (lines do not jump about as values come and go); numbers are right-aligned; the last column is not
padded. The phrase saying what happened (`what`) takes the room the others leave, cut with `…`.

    wide (≥ 100 columns):
    12:00:01.234567 http 10.0.0.2:51234 → 10.0.0.1:80 GET /index.html (example.com) 404 Not Found 1.23ms 312B/4.1K
    narrow (< 100 columns): milliseconds, the server end only, no sizes or flags; under 130 columns a
    status name only when code and name fit in 16 characters
    12:00:01.234 http 10.0.0.1:80 GET /index.html (example.com) 404 Not Found 1.23ms

A line is never longer than the width: when the what-column would fall under MIN_WHAT, the sizes and then
the flags are left out of that line, and as a last resort the line is cut. Wide characters (CJK) count
as one column: a line holding them may wrap.

Every cell is built from the record's JSON object (Roundtrip.to_json(), the redacted view: a `?token=`
value is `[REDACTED]`, SQL literals are `?`), through the protocol's `display` (protocols/<name>/display.py);
nothing here knows a protocol by name. Wire text is made safe for a terminal (control characters, escape
sequences and line breaks cannot reach it). With process attribution, an end that is a socket on this
host is followed by `comm[pid]` (in the narrow layout, the local end's only).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

from packetd.pairing.roundtrip import MAX_TIME_S, Process, Roundtrip, endpoint_text
from packetd.protocols import tls
from packetd.protocols.base import Flag, Kind
from packetd.protocols.display import DEFAULT, Display
from packetd.protocols.registry import REGISTRY, Registry
from packetd.units import format_duration, format_size

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_RED = "\x1b[31m"
_YELLOW = "\x1b[33m"
_GREEN = "\x1b[32m"
_CYAN = "\x1b[36m"
NARROW_BELOW = 100  # columns: under this, the narrow layout
MIN_WHAT = 24  # characters the what-column keeps before sizes and flags give way to it
FULL_STATUS_FROM = 130  # columns: from here a status name of any length ("1045 ER_ACCESS_DENIED_ERROR")
NARROW_STATUS_CAP = 16  # "NoReplicationEnabled" is cut; "1146 ER_NO_SUCH_TABLE" shows the number alone
FALLBACK_WIDTH = 160  # not a terminal (a pipe, a file): a wide layout, so nothing is cut early
MAX_WHAT = 400  # characters of a what-phrase ever considered (a 1 MB statement is not copied per line)

# wire text reaching a terminal: line breaks and tabs become spaces, every other C0/C1 control character
# (ESC starts an escape sequence) a visible '?'
_SAFE = {c: "?" for c in [*range(0x20), *range(0x7F, 0xA0)]} | {c: " " for c in (9, 10, 11, 12, 13)}


def safe(text: str) -> str:
    """One line of printable text: controls replaced, runs of white space folded to one space."""
    return " ".join(text[:MAX_WHAT].translate(_SAFE).split())


def fit(text: str, n: int, keep_end: bool = False) -> str:
    """`text` in at most `n` characters, cut with `…` (from the front when the end matters: a port)."""
    if len(text) <= n:
        return text
    if n <= 1:
        return text[:n]
    return "…" + text[-(n - 1) :] if keep_end else text[: n - 1] + "…"


class Column:
    """One column: grows to the widest value shown (up to `cap`), never shrinks."""

    __slots__ = ("cap", "keep_end", "right", "width")

    def __init__(self, cap: int, right: bool = False, keep_end: bool = False) -> None:
        self.cap = cap
        self.right = right
        self.keep_end = keep_end
        self.width = 0

    def cell(self, text: str, last: bool) -> str:
        text = fit(text, self.cap, self.keep_end)
        self.width = max(self.width, len(text))
        if self.right:
            return text.rjust(self.width)
        return text if last else text.ljust(self.width)


class Layout:
    """The columns of one layout (wide or narrow), each keeping its width."""

    def __init__(self, wide: bool) -> None:
        self.wide = wide
        self.proto = Column(10)  # "postgresql"
        # "[2001:db8::1]:54321 curl[812] → 10.0.0.1:80 nginx[77]"; narrow: one end
        self.peers = Column(60 if wide else 30, keep_end=True)
        self.what = Column(MAX_WHAT)
        self.status = Column(NARROW_STATUS_CAP)  # "1146 ER_NO_SUCH_TABLE"; the cap follows the width
        self.latency = Column(9, right=True)  # "123.45ms"
        self.req_size = Column(6, right=True)
        self.resp_size = Column(6, right=True)
        # "(handshake) [gap,midstream,truncated]": the last column, not padded, but the room it took once
        # stays kept for it, so the columns before it do not move when a line has no flags
        self.extras = Column(40 if wide else 24)


Cell = tuple[str, "Column | None", str]  # text, its column (None: fixed width), colour


def _owner(proc: Process | None) -> str:
    return f" {proc.comm}[{proc.pid}]" if proc is not None else ""


def _clock(ts_ns: int, digits: int) -> str:
    ts = min(max(ts_ns, 0), MAX_TIME_S * 1_000_000_000)  # gmtime fails near 2^55 s
    frac = f"{ts % 1_000_000_000:09d}"[:digits]
    return time.strftime("%H:%M:%S", time.gmtime(ts // 1_000_000_000)) + "." + frac


def _peers(rt: Roundtrip, wide: bool) -> str:
    procs = rt.processes or (None, None)
    client, server = endpoint_text(rt.client), endpoint_text(rt.server)
    if wide:
        return f"{client}{_owner(procs[0])} → {server}{_owner(procs[1])}"
    if procs[0] is not None:  # the local end is the client: who called whom
        return f"{procs[0].comm}[{procs[0].pid}] → {server}"
    return f"{server}{_owner(procs[1])}"


def _extras(rt: Roundtrip, rec: dict[str, Any]) -> str:
    flags = rec["flags"]
    extra = f"[{','.join(flags)}]" if flags else ""
    if rt.kind != Kind.ROUNDTRIP and rec["status"] is not None:  # without a status, that cell says the kind
        extra = f"({rt.kind}) {extra}".rstrip()
    return extra


def terminal_width() -> int:
    """The terminal's width now ($COLUMNS first, as shutil does), FALLBACK_WIDTH when not a terminal."""
    return shutil.get_terminal_size((FALLBACK_WIDTH, 24)).columns


class TextFormatter:
    """Records to text lines (see the module docstring)."""

    def __init__(
        self, color: bool, width: Callable[[], int] = terminal_width, registry: Registry = REGISTRY
    ) -> None:
        self.color = color
        self._width = width
        self._registry = registry
        self._layouts = {True: Layout(True), False: Layout(False)}

    def _display(self, rt: Roundtrip, rec: dict[str, Any]) -> tuple[str, str]:
        spec = self._registry.get(rt.protocol)
        display: Display = spec.display if spec is not None else DEFAULT
        what = tls.display_what(rec) if tls.is_tls_record(rec) else display.what(rec)
        return safe(what), safe(display.status(rec))

    def format(self, rt: Roundtrip) -> str:
        rec = rt.to_json()
        width = max(self._width(), 20)
        lay = self._layouts[width >= NARROW_BELOW]
        what, status = self._display(rt, rec)
        # status names take room from what happened: in full from FULL_STATUS_FROM columns on
        lay.status.cap = 28 if width >= FULL_STATUS_FROM else NARROW_STATUS_CAP
        lay.status.width = min(lay.status.width, lay.status.cap)
        if len(status) > lay.status.cap:
            status = str(rec.get("status") or rec["kind"])  # the code alone when code + name do not fit
        dur = rt.duration_ns
        head: list[Cell] = [
            (_clock(rt.start_ns, 6 if lay.wide else 3), None, _DIM),
            (rt.protocol, lay.proto, _CYAN),
            (safe(_peers(rt, lay.wide)), lay.peers, ""),
        ]
        tail: list[Cell] = [
            (status, lay.status, self._status_color(rt, rec)),
            (format_duration(dur) if dur is not None else "-", lay.latency, ""),
        ]
        sizes: list[Cell] = [
            (format_size(rt.request.size) if rt.request is not None else "-", lay.req_size, ""),
            (format_size(rt.response.size) if rt.response is not None else "-", lay.resp_size, ""),
        ]
        extras = _extras(rt, rec) if lay.wide else ""  # narrow: the room goes to what happened
        flag_c = _YELLOW if rt.all_flags & (Flag.GAP | Flag.TRUNCATED) else _DIM
        return self._assemble(
            width, head, (what, lay.what), tail, sizes if lay.wide else [], (extras, lay.extras, flag_c)
        )

    def _assemble(
        self,
        width: int,
        head: list[Cell],
        what_in: tuple[str, Column],
        tail: list[Cell],
        sizes: list[Cell],
        extras_in: tuple[str, Column, str],
    ) -> str:
        what, what_col = what_in
        extras_text, extras_col, extras_color = extras_in
        fixed = [self._cell(text, col, False) for text, col, _ in head + tail]
        used = sum(len(c) + 1 for c in fixed)  # each with its separating space
        size_cells = [self._cell(text, col, False) for text, col, _ in sizes]
        size_len = sum(len(c) for c in size_cells) + 2 if size_cells else 0  # " " + "/"
        extras_cell = extras_col.cell(extras_text, True) if extras_text else ""
        extra_len = extras_col.width + 1 if extras_col.width else 0
        if width - used - size_len - extra_len < MIN_WHAT:
            size_cells, size_len = [], 0
        if width - used - size_len - extra_len < MIN_WHAT:
            extras_cell, extra_len = "", 0
        room = max(width - used - size_len - extra_len, 1)
        what_col.width = min(what_col.width, room)  # a narrower terminal than before: the phrase gives way
        what_cell = what_col.cell(fit(what, room), False)[:room]
        cells = [*fixed[: len(head)], what_cell, *fixed[len(head) :]]
        colors = [c for _, _, c in head] + [""] + [c for _, _, c in tail]
        if size_cells:
            cells.append(size_cells[0] + "/" + size_cells[1])
            colors.append("")
        if extras_cell:
            cells.append(extras_cell)
            colors.append(extras_color)
        plain = " ".join(cells).rstrip()
        if len(plain) > width:  # the last resort (a terminal narrower than the columns' caps): cut
            return plain[: width - 1] + "…"
        if not self.color:
            return plain
        return " ".join(self._paint(c, k) for c, k in zip(cells, colors, strict=True)).rstrip()

    @staticmethod
    def _cell(text: str, col: Column | None, last: bool) -> str:
        return text if col is None else col.cell(text, last)

    def _paint(self, text: str, color: str) -> str:
        return f"{color}{text}{_RESET}" if self.color and color and text.strip() else text

    def _status_color(self, rt: Roundtrip, rec: dict[str, Any]) -> str:
        status = str(rec.get("status") or "")
        if rt.error:
            return _RED
        if rt.kind == Kind.UNANSWERED or (status.isdigit() and int(status) >= 400):
            return _YELLOW
        return _GREEN
