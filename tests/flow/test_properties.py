"""Hypothesis properties of TCP reassembly, over random data, segmentations, retransmissions with other
cuts, duplicates, arbitrary arrival orders and initial sequence numbers anywhere (wrap-around included).

The truth is the original byte stream and the set of byte offsets that some captured segment carried:
without loss, exactly the original stream is delivered, once; with loss, every lost run is one gap of its
exact size and every byte delivered is the original byte at its offset.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetd.flow.table import MAX_OOO_BYTES, MAX_OOO_SEGMENTS
from packetd.net.packet import Segment

from .util import SEC, T0, Conn, Harness

isns = st.one_of(
    st.integers(0, 2**32 - 1),
    st.integers(2**32 - 3000, 2**32 - 1),  # the data crosses the wrap
)


@st.composite
def captures(
    draw: st.DrawFn, lossy: bool
) -> tuple[Conn, dict[int, bytes], list[Segment], dict[int, set[int]]]:
    """Both directions' data, cut and re-cut, some segments repeated, all shuffled (the SYNs stay first).

    Returns the connection, the data per direction, the segments in arrival order and, per direction, the
    offsets that some captured segment carried.
    """
    c = Conn(isn=(draw(isns), draw(isns)))
    data = {d: draw(st.binary(min_size=1, max_size=600)) for d in (0, 1)}
    segs: list[Segment] = []
    covered: dict[int, set[int]] = {0: set(), 1: set()}
    for d in (0, 1):
        n = len(data[d])
        cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=12)))
        bounds = [0, *[x for x in cuts if x < n], n]
        pieces = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
        if lossy:
            keep = draw(st.lists(st.booleans(), min_size=len(pieces), max_size=len(pieces)))
            pieces = [p for p, k in zip(pieces, keep, strict=True) if k]
        # retransmissions cut differently: any sub-range (of what was kept, when nothing may be lost)
        for _ in range(draw(st.integers(0, 4))):
            if lossy:
                a = draw(st.integers(0, n - 1))
                b = draw(st.integers(a + 1, n))
            elif pieces:
                lo, hi = draw(st.sampled_from(pieces))
                a = draw(st.integers(lo, hi - 1))
                b = draw(st.integers(a + 1, hi))
            else:
                continue
            pieces.append((a, b))
        pieces += draw(st.lists(st.sampled_from(pieces), max_size=4)) if pieces else []  # exact duplicates
        for a, b in pieces:
            covered[d].update(range(a, b))
            segs.append(c.data(0, d, a, data[d][a:b]))
    order = draw(st.permutations(range(len(segs))))
    arrival = [segs[i] for i in order]
    for i, s in enumerate(arrival):  # timestamps 1 µs apart: no hole times out
        s.ts_ns = T0 + 1000 + i * 1000
    return c, data, [c.syn(T0), c.synack(T0 + 1), *arrival], covered


def runs(data: bytes, covered: set[int]) -> list[tuple[str, int, object]]:
    """The script one direction must produce: data runs and one gap per missing run, up to the last byte seen."""
    out: list[tuple[str, int, object]] = []
    end = max(covered) + 1 if covered else 0
    i = 0
    while i < end:
        j = i
        have = i in covered
        while j < end and (j in covered) == have:
            j += 1
        out.append(("data", 0, data[i:j]) if have else ("gap", 0, j - i))
        i = j
    return out


def per_direction(script: list[tuple[object, ...]], d: int) -> list[tuple[object, ...]]:
    return [(ev[0], 0, *ev[2:]) for ev in script if ev[0] in ("data", "gap") and ev[1] == d]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(captures(lossy=False))
def test_no_loss_delivers_exactly_the_original_stream_once(cap: tuple) -> None:
    _c, data, segs, _ = cap
    h = Harness().feed(*segs)
    r = h.only
    assert r.stream(0) == data[0]
    assert r.stream(1) == data[1]
    assert h.stats("gaps", "hole_timeouts", "ooo_overflows") == {
        "gaps": 0,
        "hole_timeouts": 0,
        "ooo_overflows": 0,
    }
    h.table.finish()
    assert r.script()[-3:] == [("eof", 0), ("eof", 1), ("close",)]
    assert r.stream(0) == data[0] and r.stream(1) == data[1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(captures(lossy=True))
def test_loss_gives_exact_gaps_and_only_original_bytes(cap: tuple) -> None:
    _c, data, segs, covered = cap
    h = Harness().feed(*segs)
    h.table.finish()
    script = h.only.script()
    for d in (0, 1):
        merged: list[tuple[object, ...]] = []
        for ev in per_direction(script, d):  # merge data split by the other direction's events
            if merged and ev[0] == "data" == merged[-1][0]:
                merged[-1] = ("data", 0, merged[-1][2] + ev[2])  # type: ignore[operator]
            else:
                merged.append(ev)
        assert merged == runs(data[d], covered[d])
    # at the end each direction flushes its holes, then ends: nothing of a direction follows its eof
    assert [ev for ev in script if ev[0] in ("eof", "close")] == [("eof", 0), ("eof", 1), ("close",)]
    assert all(ev[1] == 1 for ev in script[script.index(("eof", 0)) :] if ev[0] in ("data", "gap"))


BIG = 1 << 20
BIG_DATA = bytes(i * 7 % 251 for i in range(BIG))  # a 1 MiB stream with a pattern that shows misplaced bytes


@st.composite
def far_segments(draw: st.DrawFn) -> tuple[int, list[tuple[int, int, int]]]:
    """Segments (time step, offset, length) anywhere in the 1 MiB stream, small and large, in any order,
    mostly close together in time but sometimes seconds apart (holes time out)."""
    out = []
    for _ in range(draw(st.integers(1, 100))):
        step = draw(st.one_of(st.integers(0, 1000), st.integers(0, 3 * SEC)))
        a = draw(st.integers(0, BIG - 1))
        n = draw(st.one_of(st.integers(1, 100), st.integers(1, 65_000)))
        out.append((step, a, min(n, BIG - a)))
    return draw(isns), out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(far_segments())
def test_bounds_hold_and_every_delivered_byte_is_in_its_place(
    cap: tuple[int, list[tuple[int, int, int]]],
) -> None:
    isn, specs = cap
    c = Conn(isn=(isn, 5000))
    h = Harness().feed(c.syn(T0 - 2), c.synack(T0 - 1))
    ts = T0
    for step, a, n in specs:
        ts += step
        h.feed(c.data(ts, 0, a, BIG_DATA[a : a + n]))
        st_ = h.table.flows()[0].streams[0]
        ooo = st_.ooo
        if ooo is not None:
            assert ooo.nbytes <= MAX_OOO_BYTES
            assert len(ooo) <= MAX_OOO_SEGMENTS
            assert ooo.nbytes == sum(len(b) for b, _ts in ooo.segs.values())
            # the heap holds exactly the buffered starts (as offsets from base)
            assert sorted((ooo.base + r) & 0xFFFFFFFF for r in ooo.heap) == sorted(ooo.segs)
    h.table.finish()
    pos = 0
    for ev in h.only.events:
        if ev[0] == "data":
            assert ev[2] == BIG_DATA[pos : pos + len(ev[2])], pos
            pos += len(ev[2])
        elif ev[0] == "gap":
            pos += ev[2]
    assert pos <= BIG
    assert h.table.stats.gap_bytes + sum(len(ev[2]) for ev in h.only.events if ev[0] == "data") == pos


# -- a real conversation: consistent ACKs both ways, loss and reordering as a capture point sees them --------
@st.composite
def conversations(draw: st.DrawFn) -> tuple[list[bytes], list[Segment], dict[int, set[int]]]:
    """Requests and responses (ACKs as a real stack sets them), some data segments lost, some adjacent
    data segments of one direction swapped (never across the other side's data, which may answer them).

    Returns each direction's bytes, the segments in capture order, and per direction the offsets captured.
    """
    from packetd.capture.pcapwrite import TcpConversation
    from packetd.net.packet import PacketDecoder

    conv = TcpConversation(
        ("10.0.0.1", 40000), ("10.0.0.2", 80), draw(isns), draw(isns), mss=draw(st.integers(5, 40))
    )
    packets = list(conv.handshake())
    data: list[bytes] = [b"", b""]
    for i in range(draw(st.integers(1, 4))):
        for side in (0, 1):
            chunk = bytes([65 + i * 2 + side]) * draw(st.integers(1, 120))
            data[side] += chunk
            packets += list(conv.send(side, chunk))
    packets += list(conv.close())
    dec = PacketDecoder(frozenset({4}))
    segs = [dec.decode(T0 + i, 228, memoryview(p)) for i, p in enumerate(packets)]
    assert all(s is not None for s in segs)
    segments: list[Segment] = [s for s in segs if s is not None]
    isn = {0: segments[0].seq + 1, 1: segments[1].seq + 1}
    direction = [0 if s.sport == 40000 else 1 for s in segments]
    # loss: any data segment (the handshake and the close stay)
    lost = {i for i, s in enumerate(segments) if len(s.payload) and draw(st.integers(0, 4)) == 0}
    order = [i for i in range(len(segments)) if i not in lost]
    # reordering: swap neighbours of one direction that no data of the other direction separates
    for _ in range(draw(st.integers(0, 6))):
        k = draw(st.integers(0, max(0, len(order) - 2)))
        j = k + 1
        while j < len(order) and not (
            len(segments[order[j]].payload) and direction[order[j]] == direction[order[k]]
        ):
            if len(segments[order[j]].payload):
                break
            j += 1
        if (
            j < len(order)
            and len(segments[order[k]].payload)
            and direction[order[j]] == direction[order[k]]
            and len(segments[order[j]].payload)
        ):
            order[k], order[j] = order[j], order[k]
    captured: dict[int, set[int]] = {0: set(), 1: set()}
    out = []
    for slot, i in enumerate(order):
        s = segments[i]
        s.ts_ns = T0 + slot * 1000  # capture time is the slot's; a microsecond apart: nothing times out
        off = (s.seq - isn[direction[i]]) & 0xFFFFFFFF
        captured[direction[i]].update(range(off, off + len(s.payload)))
        out.append(s)
    return data, out, captured


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_conversation_with_loss_and_capture_reordering(conv: tuple) -> None:
    data, segs, captured = conv
    h = Harness().feed(*segs)
    h.table.finish()
    r = h.only
    for d in (0, 1):
        stream = r.stream(d)
        # every captured byte is delivered, in its place; every other byte below the end is a gap
        assert len(stream) <= len(data[d])
        for off in range(len(stream)):
            if off in captured[d]:
                assert stream[off] == data[d][off], (d, off)
            else:
                assert stream[off : off + 1] == b"?", (d, off)
        # the stream reaches the last captured byte (nothing captured is lost); a lost tail is a gap
        # because the peer acknowledged it, or the FIN follows it
        assert len(stream) == len(data[d])
    assert r.script()[-1] == ("close",)
