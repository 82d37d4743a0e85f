"""TCP ordering: in order, reordered, duplicated, overlapping, across sequence wrap-around.

Every expectation is written out by hand: the byte stream each direction must deliver, exactly once, and
the counters that must move (and, through `nonzero()`, that nothing else moved).
"""

from __future__ import annotations

import itertools

import pytest

from packetd.net.packet import ACK, FIN, PSH

from .util import SEC, T0, Conn, Harness, seg

REQ = b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n"  # 37 bytes
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"  # 43 bytes


def test_in_order_exchange_and_close() -> None:
    c = Conn()
    h = Harness()
    h.feed(*c.handshake(T0))
    h.feed(*c.cut(T0 + 10, 0, REQ, [10, 20]))
    h.feed(*c.cut(T0 + 20, 1, RESP, [38], ack_off=37))
    h.feed(c.data(T0 + 30, 0, 37, b"", 43, FIN | ACK))  # client FIN
    h.feed(c.data(T0 + 31, 1, 43, b"", 38, FIN | ACK))  # server FIN, acking the client's
    h.feed(c.data(T0 + 32, 0, 38, b"", 44))  # last ACK: acknowledges the server's FIN
    r = h.only
    assert (r.client, r.server, r.midstream, r.protocol) == (
        ("10.0.0.1", 40000),
        ("10.0.0.2", 80),
        False,
        "http",
    )
    assert r.script() == [("data", 0, REQ), ("data", 1, RESP), ("eof", 0), ("eof", 1), ("close",)]
    # the final ACK belongs to a closed connection but carries nothing: counted as no_flow, not late
    assert h.nonzero() == {"created": 1, "closed": 1, "no_flow": 1}


def test_each_segment_is_delivered_as_it_comes_in_order() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), *c.cut(T0 + 10, 0, REQ, [10, 20]))
    assert h.only.events == [("data", 0, REQ[:10]), ("data", 0, REQ[10:20]), ("data", 0, REQ[20:])]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_every_permutation_of_four_segments(order: tuple[int, ...]) -> None:
    c = Conn()
    segs = c.cut(T0 + 10, 0, REQ, [5, 17, 30])
    h = Harness().feed(*c.handshake(T0), *(segs[i] for i in order))
    assert h.only.script() == [("data", 0, REQ)]
    # a segment is buffered iff it arrives while an earlier one is still missing
    buffered = sum(1 for k, i in enumerate(order) if any(j < i for j in order[k + 1 :]))
    expected = {"created": 1}
    if buffered:
        expected["out_of_order"] = buffered
    assert h.nonzero() == expected


def test_reversed_segments_are_buffered_then_delivered_at_once() -> None:
    c = Conn()
    segs = c.cut(T0 + 10, 0, REQ, [5, 17, 30])
    h = Harness().feed(*c.handshake(T0), segs[3], segs[2], segs[1])
    assert h.only.events == []
    h.feed(segs[0])
    assert h.only.events == [
        ("data", 0, REQ[:5]),
        ("data", 0, REQ[5:17]),
        ("data", 0, REQ[17:30]),
        ("data", 0, REQ[30:]),
    ]
    assert h.nonzero() == {"created": 1, "out_of_order": 3}


def test_both_directions_interleaved_out_of_order() -> None:
    c = Conn()
    a = c.cut(T0 + 10, 0, REQ, [20])
    b = c.cut(T0 + 20, 1, RESP, [10, 30])  # acks nothing of the client beyond the handshake
    h = Harness().feed(*c.handshake(T0), b[2], a[1], b[0], a[0], b[1])
    assert h.only.stream(0) == REQ
    assert h.only.stream(1) == RESP
    assert h.nonzero() == {"created": 1, "out_of_order": 2}


def test_duplicates_are_dropped_and_counted() -> None:
    c = Conn()
    segs = c.cut(T0 + 10, 0, REQ, [10, 20])
    # each segment twice in a row (a loopback capture sees both copies), then all three again
    h = Harness().feed(*c.handshake(T0), *(s for s in segs for _ in range(2)), *segs)
    assert h.only.script() == [("data", 0, REQ)]
    assert h.nonzero() == {"created": 1, "duplicates": 6}


def test_duplicate_of_a_buffered_segment() -> None:
    c = Conn()
    segs = c.cut(T0 + 10, 0, REQ, [10, 20])
    h = Harness().feed(*c.handshake(T0), segs[2], segs[2], segs[1], segs[0])
    assert h.only.script() == [("data", 0, REQ)]
    assert h.nonzero() == {"created": 1, "out_of_order": 2, "duplicates": 1}


def test_repeated_syn_and_handshake_are_harmless() -> None:
    c = Conn()
    h = Harness().feed(
        c.syn(T0), c.syn(T0 + 1), c.synack(T0 + 2), c.synack(T0 + 3), *c.cut(T0 + 10, 0, REQ, [])
    )
    assert h.only.script() == [("data", 0, REQ)]
    assert h.nonzero() == {"created": 1}


# -- overlapping retransmissions with a different segmentation ----------------------------------------------
DATA = bytes(range(65, 65 + 40))  # 40 distinct bytes: any misplaced byte shows


@pytest.mark.parametrize(
    ("pieces", "duplicates", "out_of_order"),
    [
        # (offset, length) in arrival order
        pytest.param([(0, 10), (10, 10), (20, 20), (0, 40)], 1, 0, id="whole-resend-after-delivery"),
        pytest.param([(0, 10), (5, 10), (15, 25)], 0, 0, id="overlap-behind-is-trimmed"),
        pytest.param([(10, 10), (20, 20), (0, 15)], 0, 2, id="first-lost-resent-longer"),
        pytest.param([(10, 10), (20, 20), (0, 25)], 0, 2, id="resend-covers-one-buffered"),
        pytest.param(
            [(10, 10), (15, 10), (12, 6), (0, 10), (25, 15)], 0, 3, id="buffered-overlap-each-other"
        ),
        pytest.param([(20, 10), (20, 20), (0, 20)], 0, 2, id="same-start-longer-replaces"),
        pytest.param([(20, 20), (20, 10), (0, 20)], 1, 1, id="same-start-shorter-is-duplicate"),
        pytest.param([(0, 5), (30, 10), (3, 30), (0, 40)], 1, 1, id="resend-bridges-hole-and-buffer"),
        pytest.param([(5, 5), (15, 5), (25, 5), (0, 40)], 0, 3, id="one-resend-fills-three-holes"),
    ],
)
def test_overlapping_retransmissions(
    pieces: list[tuple[int, int]], duplicates: int, out_of_order: int
) -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0))
    h.feed(*(c.data(T0 + 10 + i, 0, off, DATA[off : off + n]) for i, (off, n) in enumerate(pieces)))
    assert h.only.script() == [("data", 0, DATA)]
    expected = {"created": 1, "duplicates": duplicates, "out_of_order": out_of_order}
    assert h.nonzero() == {k: v for k, v in expected.items() if v}


def test_keepalive_probe_is_not_data() -> None:
    """A keep-alive probe repeats the byte before next_seq (RFC 9293 §3.8.4): a duplicate."""
    c = Conn()
    h = Harness().feed(*c.handshake(T0), *c.cut(T0 + 10, 0, REQ, []))
    h.feed(c.data(T0 + 60 * SEC, 0, len(REQ) - 1, REQ[-1:]))
    h.feed(c.data(T0 + 61 * SEC, 0, len(REQ) - 1, b""))
    assert h.only.script() == [("data", 0, REQ)]
    assert h.nonzero() == {"created": 1, "duplicates": 1}


# -- sequence wrap-around -------------------------------------------------------------------------------------
WRAP_ISN = 2**32 - 8  # SYN at 2**32-8, first data byte at 2**32-7: byte 7 of the stream has sequence 0


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_wraparound_reordered(order: tuple[int, ...]) -> None:
    c = Conn(isn=(WRAP_ISN, 2**32 - 1))  # the server's first data byte has sequence 0 exactly
    assert c.at(0, 7) == 0 and c.at(1, 0) == 0
    segs = c.cut(T0 + 10, 0, DATA, [4, 7, 9])  # the cut at 7 is exactly the wrap
    resp = c.cut(T0 + 20, 1, DATA, [1, 20])  # the cut at 1 ends just past sequence 0
    h = Harness().feed(*c.handshake(T0), *(segs[i] for i in order), *(resp[i] for i in order if i < 3))
    assert h.only.script() == [("data", 0, DATA), ("data", 1, DATA)]
    assert h.nonzero().keys() <= {"created", "out_of_order"}


def test_wraparound_overlap_and_duplicate_across_zero() -> None:
    c = Conn(isn=(WRAP_ISN, 5000))
    h = Harness().feed(*c.handshake(T0))
    h.feed(c.data(T0 + 10, 0, 0, DATA[:5]))  # seqs 2**32-7 .. 2**32-3
    h.feed(c.data(T0 + 11, 0, 10, DATA[10:20]))  # seqs 3..12: ahead across the wrap, buffered
    h.feed(c.data(T0 + 12, 0, 3, DATA[3:12]))  # overlaps both sides of the wrap
    h.feed(c.data(T0 + 13, 0, 0, DATA[:20]))  # a full duplicate spanning the wrap
    h.feed(c.data(T0 + 14, 0, 20, DATA[20:]))
    assert h.only.script() == [("data", 0, DATA)]
    assert h.nonzero() == {"created": 1, "out_of_order": 1, "duplicates": 1}


def test_wraparound_fin_at_zero() -> None:
    c = Conn(isn=(2**32 - 41, 5000))  # 40 data bytes end at 2**32-1: the FIN has sequence 0
    h = Harness().feed(*c.handshake(T0))
    h.feed(c.data(T0 + 10, 0, 0, DATA, flags=ACK | PSH))
    h.feed(c.data(T0 + 11, 0, 40, b"", flags=FIN | ACK))
    assert c.at(0, 40) == 0
    assert h.only.script() == [("data", 0, DATA), ("eof", 0)]


def test_wraparound_midstream_without_syn() -> None:
    h = Harness()
    h.feed(seg(T0, 0, 2**32 - 3, 77, ACK, DATA[:10]))  # joined mid-stream just before the wrap
    h.feed(seg(T0 + 2, 0, 17, 77, ACK, DATA[20:]))  # ahead across the wrap
    h.feed(seg(T0 + 1, 0, 7, 77, ACK, DATA[10:20]))
    assert h.only.script() == [("data", 0, DATA)]
    assert h.only.midstream
    assert h.nonzero() == {"created": 1, "midstream": 1, "out_of_order": 1}


def test_segment_half_the_sequence_space_behind_is_old() -> None:
    """2**31 - 1 ahead is ahead; 2**31 and more is behind (RFC 1982 serial arithmetic)."""
    c = Conn(isn=(100, 5000))
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, b"abc"))
    h.feed(seg(T0 + 11, 0, c.at(0, 3) + 2**31, c.at(1, 0), ACK, b"zz"))  # "behind": a stale duplicate
    h.feed(seg(T0 + 12, 0, c.at(0, 3) + 2**31 - 1, c.at(1, 0), ACK, b"yy"))  # ahead: buffered
    assert h.only.script() == [("data", 0, b"abc")]
    assert h.nonzero() == {"created": 1, "duplicates": 1, "out_of_order": 1}


# -- joined mid-stream: where a direction starts ---------------------------------------------------------------
def test_midstream_start_from_the_peer_ack_allows_reordering() -> None:
    """The client's request acknowledges the server's stream up to 5000: the server's first two segments,
    captured in reverse, are both placed."""
    h = Harness()
    h.feed(seg(T0, 0, 100, 5000, ACK, b"GET / HTTP/1.1\r\n\r\n"))
    h.feed(seg(T0 + 1, 1, 5010, 118, ACK, b"second"), seg(T0 + 2, 1, 5000, 118, ACK, b"first-part"))
    assert h.only.script() == [("data", 0, b"GET / HTTP/1.1\r\n\r\n"), ("data", 1, b"first-partsecond")]
    assert h.nonzero() == {"created": 1, "midstream": 1, "out_of_order": 1}


def test_midstream_start_at_the_peer_ack() -> None:
    h = Harness().feed(seg(T0, 0, 100, 5000, ACK, b"req"), seg(T0 + 1, 1, 5000, 103, ACK, b"resp"))
    assert h.only.script() == [("data", 0, b"req"), ("data", 1, b"resp")]
    assert h.nonzero() == {"created": 1, "midstream": 1}


def test_midstream_ack_far_behind_is_not_a_start() -> None:
    from packetd.flow.table import MAX_OOO_BYTES

    h = Harness().feed(seg(T0, 0, 100, 5000, ACK, b"req"))
    h.feed(seg(T0 + 1, 1, 5000 + MAX_OOO_BYTES + 1, 103, ACK, b"resp"))
    assert h.only.script() == [("data", 0, b"req"), ("data", 1, b"resp")]


def test_midstream_ack_ahead_of_the_first_segment_is_not_a_start() -> None:
    """A first segment below the peer's ACK is a retransmission of acknowledged bytes: still, it is all we
    have of the stream's start, and it is delivered."""
    h = Harness().feed(seg(T0, 0, 100, 5010, ACK, b"req"), seg(T0 + 1, 1, 5000, 103, ACK, b"0123456789"))
    assert h.only.script() == [("data", 0, b"req"), ("data", 1, b"0123456789")]


def test_midstream_bytes_before_the_first_segment_never_seen() -> None:
    from packetd.flow.table import SWEEP_INTERVAL_NS

    h = Harness().feed(seg(T0, 0, 100, 5000, ACK, b"req"), seg(T0 + 1, 1, 5010, 103, ACK, b"resp"))
    assert h.only.script() == [("data", 0, b"req")]
    h.table.tick(T0 + SWEEP_INTERVAL_NS)
    assert h.only.script() == [("data", 0, b"req"), ("gap", 1, 10), ("data", 1, b"resp")]
