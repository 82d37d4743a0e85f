"""Holes: filled late, timed out by packet time, acknowledged past, overflowing the reorder buffer, before a
FIN, at a RST and at the end of the capture. Gap sizes are counted by hand from the segment offsets.
"""

from __future__ import annotations

import pytest

from packetd.flow.table import HOLE_TIMEOUT_NS, MAX_OOO_BYTES, MAX_OOO_SEGMENTS, SWEEP_INTERVAL_NS
from packetd.net.packet import ACK, FIN, RST

from .util import SEC, T0, Conn, Harness

DATA = bytes(range(65, 65 + 40))
# three segments of the client: [0, 10) delivered, [10, 25) lost (15 bytes), [25, 40) ahead of the hole
A, LOST, B = (0, 10), (10, 25), (25, 40)


def start() -> tuple[Conn, Harness]:
    """Handshake at T0, then the client's first and third segments at T0 + 10 ns and T0 + 11 ns."""
    c = Conn()
    h = Harness().feed(*c.handshake(T0))
    h.feed(c.data(T0 + 10, 0, A[0], DATA[A[0] : A[1]]), c.data(T0 + 11, 0, B[0], DATA[B[0] : B[1]]))
    assert h.only.script() == [("data", 0, DATA[:10])]
    return c, h


def lost(c: Conn, ts: int) -> object:
    return c.data(ts, 0, LOST[0], DATA[LOST[0] : LOST[1]])


def test_hole_filled_late_but_in_time() -> None:
    c, h = start()
    h.feed(lost(c, T0 + 11 + HOLE_TIMEOUT_NS))  # exactly the timeout: still waited for
    assert h.only.script() == [("data", 0, DATA)]
    assert h.nonzero() == {"created": 1, "out_of_order": 1}


def test_hole_times_out_on_the_next_segment_of_its_direction() -> None:
    c, h = start()
    later = c.data(T0 + 11 + HOLE_TIMEOUT_NS + 1, 0, 40, b"more")
    h.feed(later)
    assert h.only.script() == [("data", 0, DATA[:10]), ("gap", 0, 15), ("data", 0, DATA[25:] + b"more")]
    h.feed(lost(c, T0 + 20 * SEC))  # the retransmission comes too late: a duplicate now
    assert h.only.script() == [("data", 0, DATA[:10]), ("gap", 0, 15), ("data", 0, DATA[25:] + b"more")]
    assert h.nonzero() == {
        "created": 1,
        "out_of_order": 2,
        "hole_timeouts": 1,
        "gaps": 1,
        "gap_bytes": 15,
        "duplicates": 1,
    }


def test_hole_times_out_on_the_sweep_driven_by_other_packets() -> None:
    c, h = start()
    # the server's pure ACK acknowledges only what was delivered; it moves packet time past the sweep
    h.feed(c.data(T0 + SWEEP_INTERVAL_NS + 1, 1, 0, b"", ack_off=10))
    assert h.only.script() == [("data", 0, DATA[:10]), ("gap", 0, 15), ("data", 0, DATA[25:])]
    assert h.nonzero() == {"created": 1, "out_of_order": 1, "hole_timeouts": 1, "gaps": 1, "gap_bytes": 15}


def test_hole_times_out_on_tick_without_packets() -> None:
    _c, h = start()
    h.table.tick(T0 + HOLE_TIMEOUT_NS)  # the first sweep ran at T0; the next is due at T0 + 5 s
    assert h.only.script() == [("data", 0, DATA[:10])]
    h.table.tick(T0 + SWEEP_INTERVAL_NS)
    assert h.only.script() == [("data", 0, DATA[:10]), ("gap", 0, 15), ("data", 0, DATA[25:])]


def test_hole_acked_past_is_skipped_when_the_sender_moves_on() -> None:
    c, h = start()
    h.feed(c.data(T0 + 12, 1, 0, b"", ack_off=40))  # the server has everything: the capture lost [10, 25)
    assert h.only.script() == [("data", 0, DATA[:10])]  # (the data may still follow its ACK in the capture)
    h.feed(c.data(T0 + 13, 0, 40, b"next"))  # the client sends on: [10, 25) will never be seen
    assert h.only.script() == [("data", 0, DATA[:10]), ("gap", 0, 15), ("data", 0, DATA[25:] + b"next")]
    assert h.nonzero() == {"created": 1, "out_of_order": 2, "acked_gaps": 1, "gaps": 1, "gap_bytes": 15}


def test_ack_captured_before_the_data_it_acknowledges_is_not_a_gap() -> None:
    """A mirror port may show the receiver's ACK before the segment it acknowledges; the data follows."""
    c, h = start()
    h.feed(c.data(T0 + 12, 1, 0, b"", ack_off=40))
    h.feed(lost(c, T0 + 13))
    h.feed(c.data(T0 + 14, 0, 40, b"next"))
    assert h.only.script() == [("data", 0, DATA + b"next")]
    assert h.nonzero() == {"created": 1, "out_of_order": 1}


def test_delivery_times_after_a_lost_hole_are_capture_times() -> None:
    """Data behind a hole that was lost in capture keeps its capture time; behind a hole filled by a
    retransmission, it becomes readable when the retransmission arrives."""

    class Timed(list[tuple[str, int, int]]):
        pass

    times = Timed()
    c, h = start()
    rec = h.only
    orig_data, orig_gap = rec.data, rec.gap
    rec.data = lambda d, data, ts: (times.append(("data", len(data), ts)), orig_data(d, data, ts))[1]  # type: ignore[method-assign]
    rec.gap = lambda d, n, ts: (times.append(("gap", n, ts)), orig_gap(d, n, ts))[1]  # type: ignore[method-assign]
    h.feed(c.data(T0 + 500, 1, 0, b"", ack_off=40), c.data(T0 + 900, 0, 40, b"next"))
    # [25, 40) was captured at T0 + 11; the hole was noticed then; "next" came at T0 + 900
    assert times == [("gap", 15, T0 + 11), ("data", 15, T0 + 11), ("data", 4, T0 + 900)]
    times.clear()
    c2, h2 = start()
    rec2 = h2.only
    orig2 = rec2.data
    rec2.data = lambda d, data, ts: (times.append(("data", len(data), ts)), orig2(d, data, ts))[1]  # type: ignore[method-assign]
    h2.feed(lost(c2, T0 + 700))  # the retransmission: [10, 40) is readable from T0 + 700 on
    assert times == [("data", 15, T0 + 700), ("data", 15, T0 + 700)]


def test_two_holes_acked_past_then_the_sender_moves_on() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0))
    for off in (0, 10, 20, 30):  # [5,10), [15,20), [25,30) and [35,40) lost
        h.feed(c.data(T0 + 10 + off, 0, off, DATA[off : off + 5]))
    h.feed(c.data(T0 + 100, 1, 0, b"", ack_off=40))  # acknowledges everything, [35, 40) included
    h.feed(c.data(T0 + 101, 0, 40, b"more"))
    want = [("data", 0, DATA[0:5])]
    for off in (10, 20, 30):
        want += [("gap", 0, 5), ("data", 0, DATA[off : off + 5])]
    want += [("gap", 0, 5), ("data", 0, b"more")]
    assert h.only.script() == want
    assert h.nonzero() == {"created": 1, "out_of_order": 4, "acked_gaps": 4, "gaps": 4, "gap_bytes": 20}


def test_holes_beyond_the_acknowledged_point_wait() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0))
    for off in (0, 10, 20):  # [5,10), [15,20) lost
        h.feed(c.data(T0 + 10 + off, 0, off, DATA[off : off + 5]))
    h.feed(c.data(T0 + 100, 1, 0, b"", ack_off=12))  # acknowledges [5, 12) only
    h.feed(c.data(T0 + 101, 0, 30, DATA[30:35]))
    # [5, 10) is acknowledged (lost), [15, 20) is not: it may still be retransmitted
    assert h.only.script() == [("data", 0, DATA[0:5]), ("gap", 0, 5), ("data", 0, DATA[10:15])]
    h.feed(c.data(T0 + 102, 0, 15, DATA[15:20]))
    assert h.only.script() == [("data", 0, DATA[0:5]), ("gap", 0, 5), ("data", 0, DATA[10:25])]
    assert h.nonzero() == {"created": 1, "out_of_order": 3, "acked_gaps": 1, "gaps": 1, "gap_bytes": 5}


def test_ack_into_the_hole_waits_then_skips_the_whole_hole() -> None:
    c, h = start()
    h.feed(c.data(T0 + 12, 1, 0, b"", ack_off=17))  # only part of the hole acknowledged: wait
    assert h.only.script() == [("data", 0, DATA[:10])]
    h.table.tick(T0 + SWEEP_INTERVAL_NS)
    assert h.only.script() == [("data", 0, DATA[:10]), ("gap", 0, 15), ("data", 0, DATA[25:])]
    assert h.nonzero() == {"created": 1, "out_of_order": 1, "hole_timeouts": 1, "gaps": 1, "gap_bytes": 15}


def test_acked_tail_loss_becomes_an_exact_gap_after_the_timeout() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, DATA[:10]))
    h.feed(c.data(T0 + 20, 1, 0, b"", ack_off=25))  # the server has [10, 25): we never saw it
    assert h.only.script() == [("data", 0, DATA[:10])]
    h.feed(c.data(T0 + SWEEP_INTERVAL_NS, 1, 0, b"", ack_off=25))
    assert h.only.script() == [("data", 0, DATA[:10]), ("gap", 0, 15)]
    h.feed(c.data(T0 + SWEEP_INTERVAL_NS + 1, 0, 25, DATA[25:]))  # the stream goes on from there
    assert h.only.script() == [("data", 0, DATA[:10]), ("gap", 0, 15), ("data", 0, DATA[25:])]
    assert h.nonzero() == {"created": 1, "hole_timeouts": 1, "gaps": 1, "gap_bytes": 15}


def test_ack_seen_before_its_data_is_not_a_gap() -> None:
    """A capture point may see the receiver's ACK before the data it acknowledges: wait for the data."""
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, DATA[:10]))
    h.feed(c.data(T0 + 20, 1, 0, b"", ack_off=25))
    h.feed(c.data(T0 + 21, 0, 10, DATA[10:25]))
    h.table.tick(T0 + 60 * SEC)
    assert h.only.script() == [("data", 0, DATA[:25])]
    assert h.nonzero() == {"created": 1}


def test_acked_tail_loss_at_the_end_of_the_capture() -> None:
    c = Conn()
    h = Harness().feed(
        *c.handshake(T0), c.data(T0 + 10, 0, 0, DATA[:10]), c.data(T0 + 20, 1, 0, b"", ack_off=25)
    )
    h.table.finish()
    assert h.only.script() == [("data", 0, DATA[:10]), ("gap", 0, 15), ("eof", 0), ("eof", 1), ("close",)]
    assert h.nonzero() == {"created": 1, "gaps": 1, "gap_bytes": 15}


def test_ack_of_a_fin_is_not_a_hole() -> None:
    """Half-close: the client's FIN takes a sequence number, the server's ACK of it acknowledges no byte."""
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, DATA, flags=FIN | ACK))
    for i in range(10):  # the server keeps sending, acknowledging the FIN, for 10 s
        h.feed(c.data(T0 + 20 + i * SEC, 1, i * 4, b"resp", ack_off=41))
    assert h.only.script() == [("data", 0, DATA), ("eof", 0), ("data", 1, b"resp" * 10)]
    assert h.nonzero() == {"created": 1}


# -- the reorder buffer's bounds ------------------------------------------------------------------------------
def ooo_state(h: Harness) -> tuple[int, int]:
    st = h.table.flows()[0].streams[0]
    return (st.ooo.nbytes if st.ooo else 0), len(st.ooo or ())


def test_overflow_by_segment_count() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 1, 0, 0, b"x" * 10))
    # [10, 20) lost; then MAX_OOO_SEGMENTS + 1 one-byte segments from offset 20
    for i in range(MAX_OOO_SEGMENTS):
        h.feed(c.data(T0 + 2 + i, 0, 20 + i, b"y"))
    assert ooo_state(h) == (MAX_OOO_SEGMENTS, MAX_OOO_SEGMENTS)
    assert h.only.script() == [("data", 0, b"x" * 10)]
    h.feed(c.data(T0 + 1000, 0, 20 + MAX_OOO_SEGMENTS, b"y"))
    assert h.only.script() == [
        ("data", 0, b"x" * 10),
        ("gap", 0, 10),
        ("data", 0, b"y" * (MAX_OOO_SEGMENTS + 1)),
    ]
    assert ooo_state(h) == (0, 0)
    assert h.nonzero() == {
        "created": 1,
        "out_of_order": MAX_OOO_SEGMENTS + 1,
        "ooo_overflows": 1,
        "ooo_segment_overflows": 1,
        "gaps": 1,
        "gap_bytes": 10,
    }


def test_overflow_by_bytes() -> None:
    c = Conn()
    big = 64 * 1024
    assert 4 * big == MAX_OOO_BYTES
    h = Harness().feed(*c.handshake(T0))
    # [0, 100) lost; four 64 KiB segments fill the buffer exactly (not beyond), the fifth overflows it
    for i in range(4):
        h.feed(c.data(T0 + 1 + i, 0, 100 + i * big, b"z" * big))
    assert ooo_state(h) == (MAX_OOO_BYTES, 4)
    assert h.only.events == []
    h.feed(c.data(T0 + 10, 0, 100 + 4 * big, b"z" * big))
    assert h.only.script() == [("gap", 0, 100), ("data", 0, b"z" * 5 * big)]
    assert h.nonzero() == {"created": 1, "out_of_order": 5, "ooo_overflows": 1, "gaps": 1, "gap_bytes": 100}


def test_overflow_skips_as_many_holes_as_needed_to_get_back_within_bounds() -> None:
    """Skipping the first hole may free a single byte: the buffer must still end within its bound."""
    c = Conn()
    seg_len = 60_000
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 1, 0, 0, b"a"))
    # [1, 2) lost, [2, 3) buffered, [3, 4) lost, then 60000-byte segments from offset 4
    h.feed(c.data(T0 + 2, 0, 2, b"b"))
    for i in range(4):
        h.feed(c.data(T0 + 3 + i, 0, 4 + i * seg_len, b"c" * seg_len))
    assert ooo_state(h) == (1 + 4 * seg_len, 5)
    h.feed(c.data(T0 + 10, 0, 4 + 4 * seg_len, b"c" * seg_len))  # 300001 buffered bytes > 262144
    assert ooo_state(h)[0] <= MAX_OOO_BYTES
    assert h.only.script() == [
        ("data", 0, b"a"),
        ("gap", 0, 1),
        ("data", 0, b"b"),
        ("gap", 0, 1),
        ("data", 0, b"c" * 5 * seg_len),
    ]
    assert h.nonzero() == {"created": 1, "out_of_order": 6, "ooo_overflows": 2, "gaps": 2, "gap_bytes": 2}


# -- FIN and RST with holes ------------------------------------------------------------------------------------
def test_fin_waits_for_the_missing_segment() -> None:
    c, h = start()
    h.feed(c.data(T0 + 12, 0, 40, b"", flags=FIN | ACK))
    assert h.only.script() == [("data", 0, DATA[:10])]
    h.feed(lost(c, T0 + 13))
    assert h.only.script() == [("data", 0, DATA), ("eof", 0)]
    assert h.nonzero() == {"created": 1, "out_of_order": 1}


def test_fin_seen_before_the_last_data() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, DATA[:20]))
    h.feed(c.data(T0 + 11, 0, 40, b"", flags=FIN | ACK))  # the FIN overtook [20, 40)
    assert h.only.script() == [("data", 0, DATA[:20])]
    h.feed(c.data(T0 + 12, 0, 20, DATA[20:]))
    assert h.only.script() == [("data", 0, DATA), ("eof", 0)]


def test_pure_fin_after_a_lost_tail_times_out_into_gap_then_eof() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, DATA[:10]))
    h.feed(c.data(T0 + 11, 0, 40, b"", flags=FIN | ACK))  # [10, 40) lost, nothing buffered
    h.table.tick(T0 + SWEEP_INTERVAL_NS)
    assert h.only.script() == [("data", 0, DATA[:10]), ("gap", 0, 30), ("eof", 0)]
    assert h.nonzero() == {"created": 1, "hole_timeouts": 1, "gaps": 1, "gap_bytes": 30}


def test_pure_fin_after_a_lost_tail_at_the_end_of_the_capture() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, DATA[:10]))
    h.feed(c.data(T0 + 11, 0, 40, b"", flags=FIN | ACK))
    h.table.finish()
    assert h.only.script() == [("data", 0, DATA[:10]), ("gap", 0, 30), ("eof", 0), ("eof", 1), ("close",)]


def test_fin_with_data_buffered_and_acked() -> None:
    c, h = start()
    h.feed(c.data(T0 + 12, 0, 40, b"end", flags=FIN | ACK))  # buffered behind the hole, with the FIN
    h.feed(c.data(T0 + 13, 1, 0, b"", ack_off=44))  # the server acknowledges the FIN
    assert h.only.script() == [("data", 0, DATA[:10])]  # the client will send nothing more: wait it out
    h.table.tick(T0 + SWEEP_INTERVAL_NS)
    assert h.only.script() == [
        ("data", 0, DATA[:10]),
        ("gap", 0, 15),
        ("data", 0, DATA[25:] + b"end"),
        ("eof", 0),
    ]
    assert h.nonzero() == {"created": 1, "out_of_order": 2, "hole_timeouts": 1, "gaps": 1, "gap_bytes": 15}


def test_fin_after_the_ack_of_a_hole() -> None:
    c, h = start()
    h.feed(c.data(T0 + 12, 1, 0, b"", ack_off=40))  # the server acknowledges [10, 40)
    h.feed(c.data(T0 + 13, 0, 40, b"end", flags=FIN | ACK))  # the client sends on, and closes
    assert h.only.script() == [
        ("data", 0, DATA[:10]),
        ("gap", 0, 15),
        ("data", 0, DATA[25:] + b"end"),
        ("eof", 0),
    ]
    assert h.nonzero() == {"created": 1, "out_of_order": 2, "acked_gaps": 1, "gaps": 1, "gap_bytes": 15}


def test_fin_ack_past_a_hole_with_nothing_buffered_waits_then_gap_and_eof() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, DATA[:10]))
    h.feed(c.data(T0 + 11, 0, 40, b"", flags=FIN | ACK))
    h.feed(c.data(T0 + 12, 1, 0, b"", ack_off=41))  # acknowledges [10, 40) and the FIN
    assert h.only.script() == [("data", 0, DATA[:10])]
    h.feed(c.data(T0 + 13 + HOLE_TIMEOUT_NS, 1, 0, b"", ack_off=41))
    assert h.only.script() == [("data", 0, DATA[:10]), ("gap", 0, 30), ("eof", 0)]
    assert h.nonzero() == {"created": 1, "hole_timeouts": 1, "gaps": 1, "gap_bytes": 30}


def test_rst_flushes_holes_then_ends_both_directions() -> None:
    c, h = start()
    h.feed(c.data(T0 + 12, 1, 0, b"partial"))
    h.feed(c.data(T0 + 13, 1, 7, b"", ack_off=10, flags=RST | ACK))
    assert h.only.script() == [
        ("data", 0, DATA[:10]),
        ("data", 1, b"partial"),
        ("gap", 0, 15),
        ("data", 0, DATA[25:]),
        ("eof", 0),
        ("eof", 1),
        ("close",),
    ]
    assert h.nonzero() == {"created": 1, "out_of_order": 1, "gaps": 1, "gap_bytes": 15, "closed": 1}
    assert h.stats("active") == {"active": 0}


@pytest.mark.parametrize("how", ["finish", "expire", "evict"])
def test_holes_are_declared_whenever_a_connection_ends(how: str) -> None:
    from packetd.flow.table import FlowConfig

    from .util import seg

    c = Conn()
    h = Harness(config=FlowConfig(max_flows=1))
    h.feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, DATA[:10]), c.data(T0 + 11, 0, 25, DATA[25:]))
    if how == "finish":
        h.table.finish()
    elif how == "expire":
        h.table.tick(T0 + 301 * SEC + SWEEP_INTERVAL_NS)
    else:
        h.feed(seg(T0 + 12, 0, 1, 0, ACK, b"other", client=("10.0.0.9", 1234)))
    first = h.handlers[0]
    assert first.script() == [
        ("data", 0, DATA[:10]),
        ("gap", 0, 15),
        ("data", 0, DATA[25:]),
        ("eof", 0),
        ("eof", 1),
        ("close",),
    ]


# -- the other side's data acknowledges a hole: causal order between the directions ---------------------------
def test_an_answer_to_lost_bytes_comes_after_their_gap() -> None:
    """The server's response acknowledges a request we never saw: the decoder must see the gap first."""
    c = Conn()
    h = Harness().feed(*c.handshake(T0))
    h.feed(c.data(T0 + 10, 1, 0, b"RESPONSE", ack_off=20))  # request [0, 20) lost in capture
    assert h.only.script() == [("gap", 0, 20), ("data", 1, b"RESPONSE")]
    h.feed(c.data(T0 + 11, 0, 0, b"x" * 20))  # its retransmission, later: already declared lost
    assert h.only.script() == [("gap", 0, 20), ("data", 1, b"RESPONSE")]
    assert h.nonzero() == {"created": 1, "acked_gaps": 1, "gaps": 1, "gap_bytes": 20, "duplicates": 1}


def test_pipelined_request_after_a_lost_one_waits_for_the_answer_to_the_lost_one() -> None:
    """Requests /1 (lost) and /2 (buffered) were pipelined; the response to /1 acknowledges /1 only: it must
    reach the decoder before /2, or the matcher would pair it with /2."""
    c = Conn()
    h = Harness().feed(*c.handshake(T0))
    h.feed(c.data(T0 + 11, 0, 10, b"/2/2/2/2/2"))  # [0, 10) — request /1 — lost
    h.feed(c.data(T0 + 12, 1, 0, b"answer to 1", ack_off=10))
    assert h.only.script() == [("gap", 0, 10), ("data", 1, b"answer to 1"), ("data", 0, b"/2/2/2/2/2")]
    assert h.nonzero() == {"created": 1, "out_of_order": 1, "acked_gaps": 1, "gaps": 1, "gap_bytes": 10}


def test_answer_acknowledging_everything_buffered() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0))
    h.feed(c.data(T0 + 11, 0, 10, b"/2/2/2/2/2"))
    h.feed(c.data(T0 + 12, 1, 0, b"answers", ack_off=20))  # acknowledges /1 and /2
    assert h.only.script() == [("gap", 0, 10), ("data", 0, b"/2/2/2/2/2"), ("data", 1, b"answers")]


def test_bare_ack_of_a_hole_does_not_force_it() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0))
    h.feed(c.data(T0 + 11, 0, 10, b"/2/2/2/2/2"))
    h.feed(c.data(T0 + 12, 1, 0, b"", ack_off=20))
    h.feed(c.data(T0 + 13, 0, 0, b"/1/1/1/1/1"))  # captured after its ACK
    assert h.only.script() == [("data", 0, b"/1/1/1/1/1/2/2/2/2/2")]
    assert h.nonzero() == {"created": 1, "out_of_order": 1}


def test_answer_that_resets_the_connection_still_lets_held_data_through() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0))
    h.feed(c.data(T0 + 11, 0, 10, b"/2/2/2/2/2"))  # request /1 ([0, 10)) lost
    h.feed(c.data(T0 + 12, 1, 0, b"answer to 1", ack_off=10, flags=RST | ACK))
    assert h.only.script() == [
        ("gap", 0, 10),
        ("data", 1, b"answer to 1"),
        ("data", 0, b"/2/2/2/2/2"),
        ("eof", 0),
        ("eof", 1),
        ("close",),
    ]
