"""The reorder buffer is bounded in bytes (MAX_OOO_BYTES) with a segment cap sized from that budget
(MAX_OOO_SEGMENTS = MAX_OOO_BYTES // OOO_MIN_SEGMENT), so a stream of tiny segments reorders as well as a
stream of large ones. The truth is the original byte stream: what the flow layer delivers must be exactly
it, with no gap and no segment counted as a retransmission.
"""

from __future__ import annotations

import random
import tracemalloc

from packetd.flow.table import MAX_OOO_BYTES, MAX_OOO_SEGMENTS, OOO_MIN_SEGMENT
from tests.flow.util import T0, Conn, Harness


def _shuffled(data: bytes, size: int, seed: int, window: int | None = None) -> list[tuple[int, bytes]]:
    """`data` cut into `size`-byte pieces (offset, bytes), shuffled wholly or within runs of `window`."""
    pieces = [(off, data[off : off + size]) for off in range(0, len(data), size)]
    rnd = random.Random(seed)
    if window is None:
        rnd.shuffle(pieces)
        return pieces
    out: list[tuple[int, bytes]] = []
    for i in range(0, len(pieces), window):
        run = pieces[i : i + window]
        rnd.shuffle(run)
        out += run
    return out


def _feed(pieces: list[tuple[int, bytes]]) -> Harness:
    c = Conn()
    h = Harness().feed(*c.handshake(T0))
    for i, (off, chunk) in enumerate(pieces):
        h.feed(c.data(T0 + 10 + i, 0, off, chunk))
    return h


def test_cap_is_sized_from_the_byte_budget() -> None:
    assert MAX_OOO_SEGMENTS == MAX_OOO_BYTES // OOO_MIN_SEGMENT
    assert MAX_OOO_SEGMENTS > 256  # the old cap, at which one-byte segments became gaps


def test_shuffled_one_byte_segments_reassemble_exactly() -> None:
    data = random.Random(1).randbytes(3000)
    h = _feed(_shuffled(data, 1, seed=2))  # every byte its own segment, in random order
    assert h.only.stream(0) == data
    stats = h.stats()
    assert stats["gaps"] == 0 and stats["duplicates"] == 0 and stats["ooo_overflows"] == 0
    assert stats["out_of_order"] > 2900  # nearly every byte arrived ahead of a hole


def test_one_byte_segments_shuffled_within_the_cap_as_a_long_stream() -> None:
    data = random.Random(3).randbytes(40_000)
    h = _feed(_shuffled(data, 1, seed=4, window=MAX_OOO_SEGMENTS))
    assert h.only.stream(0) == data
    assert h.stats("gaps", "duplicates", "ooo_overflows") == {"gaps": 0, "duplicates": 0, "ooo_overflows": 0}


def test_large_segments_shuffled_reassemble_exactly() -> None:
    data = random.Random(5).randbytes(600_000)
    # 1448-byte segments shuffled in runs of 150 (217 KiB: inside the 256 KiB budget)
    h = _feed(_shuffled(data, 1448, seed=6, window=150))
    assert h.only.stream(0) == data
    assert h.stats("gaps", "duplicates", "ooo_overflows") == {"gaps": 0, "duplicates": 0, "ooo_overflows": 0}


def test_overlapping_retransmissions_among_tiny_segments() -> None:
    """Repacketised retransmissions: overlapping segments in any order still give the original bytes."""
    data = random.Random(7).randbytes(2000)
    rnd = random.Random(8)
    pieces = [(off, data[off : off + 1]) for off in range(len(data))]
    pieces += [(off, data[off : off + 5]) for off in range(0, len(data), 3)]  # overlapping copies
    rnd.shuffle(pieces)
    h = _feed(pieces)
    assert h.only.stream(0) == data
    assert h.stats("gaps", "ooo_overflows") == {"gaps": 0, "ooo_overflows": 0}


def test_bookkeeping_per_buffered_segment_matches_the_comment() -> None:
    """MAX_OOO_SEGMENTS tiny segments cost what table.py says (~160 bytes each, under 1 MiB in all)."""
    c = Conn()
    h = Harness().feed(*c.handshake(T0))
    segments = [c.data(T0 + 10 + i, 0, 1 + i, b"y") for i in range(MAX_OOO_SEGMENTS)]  # byte 0 lost
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    h.feed(*segments)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    st = h.table.flows()[0].streams[0]
    assert st.ooo is not None and len(st.ooo) == MAX_OOO_SEGMENTS
    per_segment = (after - before) / MAX_OOO_SEGMENTS
    assert 100 < per_segment < 300, per_segment
    assert per_segment * MAX_OOO_SEGMENTS < 1024 * 1024
