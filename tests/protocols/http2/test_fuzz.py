"""Fuzz (Hypothesis): random frames, random bytes and random segmentations give only messages or DecodeError,
and the decoder's buffers and tables stay within their named bounds."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetd.protocols.base import DecodeError, DecoderContext, Direction, Message
from packetd.protocols.http2 import decoder as h2
from packetd.protocols.http2.decoder import Http2Decoder
from tests.helpers.h2wire import PREFACE, Conn, data, frame, grpc_msg
from tests.protocols.http2.test_decoder import CASES, summary

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cut(blob: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(blob) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(blob)]:
        out.append(blob[last:p])
        last = p
    return [b for b in out if b]


def _check_bounds(d: Http2Decoder) -> None:
    assert len(d._streams) <= h2.MAX_STREAMS
    for side in d._sides:
        assert len(side.block) <= h2.MAX_HEADER_BLOCK
        assert len(side.buf) <= max(h2.MAX_HEADER_BLOCK, h2.MAX_CONTROL_PAYLOAD, len(PREFACE), 9)
        assert side.table.maxsize <= h2.MAX_HPACK_TABLE


def _drive(d: Http2Decoder, pieces: list[tuple[Direction, bytes | int]]) -> list[Message]:
    """Feed pieces (an int is a capture gap of that many bytes) and both EOFs."""
    out: list[Message] = []
    try:
        for i, (direction, piece) in enumerate(pieces):
            if isinstance(piece, int):
                out.extend(d.receive_gap(direction, piece, i))
            else:
                out.extend(d.receive(direction, memoryview(piece), i))
            _check_bounds(d)
        out.extend(d.receive_eof(Direction.C2S, 10**9))
        out.extend(d.receive_eof(Direction.S2C, 10**9))
    except DecodeError:
        pass
    _check_bounds(d)
    for m in out:
        m.to_json()  # serialising never raises either
    return out


frames = st.builds(
    frame,
    st.integers(0, 12),
    st.integers(0, 255),
    st.sampled_from([0, 1, 2, 3, 5, 0x7FFFFFFF]),
    st.binary(max_size=64),
)


@SETTINGS
@given(
    st.lists(st.tuples(st.sampled_from([Direction.C2S, Direction.S2C]), frames), max_size=30),
    st.booleans(),
)
def test_random_frames_give_messages_or_decode_error(
    seq: list[tuple[Direction, bytes]], midstream: bool
) -> None:
    d = Http2Decoder(DecoderContext(midstream=midstream))
    pieces = [(Direction.C2S, PREFACE)] if not midstream else []
    _drive(d, pieces + seq)


@SETTINGS
@given(st.binary(max_size=2000), st.lists(st.integers(0, 4000), max_size=8), st.booleans())
def test_random_bytes_give_messages_or_decode_error(blob: bytes, cuts: list[int], midstream: bool) -> None:
    d = Http2Decoder(DecoderContext(midstream=midstream))
    _drive(d, [(Direction.C2S, PREFACE), *((Direction(i % 2), p) for i, p in enumerate(_cut(blob, cuts)))])


@SETTINGS
@given(st.sampled_from(sorted(CASES)), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_segmentation_gives_the_same_messages(name: str, cuts: list[int]) -> None:
    steps, _, expected = CASES[name]()
    pieces: list[tuple[Direction, bytes]] = []
    for direction, blob in steps:
        pieces += [(direction, p) for p in _cut(blob, cuts)]
    d = Http2Decoder()
    out: list[Message] = []
    for i, (direction, p) in enumerate(pieces):
        out.extend(d.receive(direction, memoryview(p), i))
    assert summary(out) == expected[:-2]


@SETTINGS
@given(
    st.sampled_from(sorted(CASES)),
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 10_000), st.integers(1, 500)), max_size=3),
)
def test_gaps_anywhere_in_a_real_conversation(name: str, gaps: list[tuple[int, int, int]]) -> None:
    """Bytes lost anywhere: never an exception other than DecodeError, bounds kept."""
    steps, _, _ = CASES[name]()
    pieces: list[tuple[Direction, bytes | int]] = []
    for direction, whole in steps:
        rest = whole
        for side, offset, n in gaps:
            if side == direction and rest:
                at = offset % len(rest)
                pieces += [(direction, rest[:at]), (direction, min(n, len(rest) - at))]
                rest = rest[at + n :]
        pieces.append((direction, rest))
    _drive(Http2Decoder(), [(d, p) for d, p in pieces if p])


@SETTINGS
@given(st.sampled_from(sorted(CASES)), st.integers(0, 10_000), st.integers(0, 10_000))
def test_joining_anywhere_never_raises_anything_but_decode_error(name: str, c_from: int, s_from: int) -> None:
    steps, _, _ = CASES[name]()
    client = b"".join(b for d, b in steps if d == Direction.C2S)
    server = b"".join(b for d, b in steps if d == Direction.S2C)
    d = Http2Decoder(DecoderContext(midstream=True))
    out = _drive(
        d,
        [
            (Direction.C2S, client[c_from % (len(client) + 1) :]),
            (Direction.S2C, server[s_from % (len(server) + 1) :]),
        ],
    )
    for m in out:
        j: dict[str, Any] = m.to_json()
        assert "size" in j


@SETTINGS
@given(st.lists(st.binary(max_size=40), max_size=6), st.lists(st.integers(0, 500), max_size=6))
def test_grpc_bodies_of_any_shape(bodies: list[bytes], cuts: list[int]) -> None:
    """Message counting is exact for well-formed gRPC bodies however DATA frames cut them."""
    conn = Conn()
    stream = b"".join(grpc_msg(b) for b in bodies)
    req = conn.headers(
        True, 1, [(":method", "POST"), (":path", "/a.B/C"), ("content-type", "application/grpc")]
    )
    body = b"".join(data(1, p) for p in _cut(stream, cuts)) + data(1, b"", end=True)
    resp = conn.headers(
        False,
        1,
        [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "0")],
        end_stream=True,
    )
    d = Http2Decoder()
    msgs = list(d.receive(Direction.C2S, memoryview(PREFACE + req + body), 1))
    msgs += d.receive(Direction.S2C, memoryview(resp), 2)
    assert msgs[0].messages == len(bodies) and msgs[0].message_bytes == sum(map(len, bodies))  # type: ignore[attr-defined]
