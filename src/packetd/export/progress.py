"""A one-line progress report on stderr while `watch` reads a capture file on a terminal.

    packetd: 212.4M of 520.0M (41%), 498,312 packets/s, ETA 8s

`Progress.wrap` passes the frames through and, every CHECK_EVERY frames, looks at the clock; after
FIRST_AFTER_S (a small file finishes without a flicker) it redraws the line at most every REDRAW_S, with
`\\r` and an erase-to-end-of-line, and erases it when the file is done. Records written to the same
terminal erase it first (`clear`), and stdout is flushed before each redraw, so a record and the progress
never share a line. `watch` uses it only when stderr is a terminal and the input a regular file: never on
a pipe, where the control characters would land in a log.

The position is counted from the frames themselves (each record's captured bytes plus its header: 16 bytes
in pcap, 32 in a pcapng Enhanced Packet Block; padding and options are not counted, so a pcapng ETA runs a
little long); a compressed file's size says nothing about its content, so it gets no percentage or ETA.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from packetd.units import format_size

CHECK_EVERY = 4096  # frames between two looks at the clock (a clock read per frame costs ~5% of replay)
FIRST_AFTER_S = 0.5  # seconds before the line first appears
REDRAW_S = 0.25  # seconds between two redraws
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
COMPRESSED = (".gz", ".zst", ".xz", ".bz2", ".lz4")

Frame = tuple[int, int, memoryview]


class Progress:
    """See the module docstring."""

    def __init__(
        self,
        out: TextIO,
        total_bytes: int | None,
        record_header: int = 16,
        before_draw: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.total = total_bytes
        self.header = record_header
        self.before_draw = before_draw
        self.clock = clock
        self.started = clock()
        self.last_draw = -1.0
        self.shown = False
        self.frames = 0
        self.bytes = 0

    def wrap(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        header = self.header
        try:
            for f in frames:
                yield f
                self.frames += 1
                self.bytes += len(f[2]) + header
                if not self.frames % CHECK_EVERY:
                    self.tick()
        finally:
            self.clear()

    def tick(self) -> None:
        now = self.clock()
        if now - self.started < FIRST_AFTER_S or now - self.last_draw < REDRAW_S:
            return
        self.last_draw = now
        if self.before_draw is not None:
            self.before_draw()
        self.out.write("\r" + self.line(now) + "\x1b[K")
        self.out.flush()
        self.shown = True

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.frames / elapsed
        text = f"packetd: {format_size(self.bytes)}"
        if self.total:
            done = min(self.bytes / self.total, 1.0)
            left = (self.total - self.bytes) / (self.bytes / elapsed) if self.bytes else 0.0
            text += f" of {format_size(self.total)} ({done:.0%}), {rate:,.0f} packets/s, ETA {eta(left)}"
        else:
            text += f", {self.frames:,} packets, {rate:,.0f} packets/s"
        return text

    def clear(self) -> None:
        if self.shown:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self.shown = False


def eta(seconds: float) -> str:
    """`8s`, `2m05s`, `1h02m`: whole units, as a person reads a countdown."""
    s = max(int(seconds + 0.5), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def for_file(path: str, out: TextIO, before_draw: Callable[[], None] | None = None) -> Progress:
    """A Progress for the regular file at `path` (its size; its record header from the magic number)."""
    total: int | None = os.path.getsize(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if path.endswith(COMPRESSED):
        total = None
    return Progress(out, total, 32 if magic == PCAPNG_MAGIC else 16, before_draw)
