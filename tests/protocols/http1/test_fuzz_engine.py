"""Fuzzing: random and half-valid bytes, cut anywhere, into the HTTP/1 decoder and the whole engine.

Truths: the architecture's contract (a decoder returns Message values or raises DecodeError, nothing else;
nothing raises out of Engine.frame / Engine.finish), and the decoder's named bounds (no buffer grows past
the MAX_* constant of the state it is in). Records are also serialised, so a message that cannot become
JSON is caught here too.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetd.capture.pcapwrite import ethernet, ipv4_tcp, ipv4_udp, ipv6_tcp
from packetd.engine import Engine, EngineConfig, Rule
from packetd.net.packet import SUPPORTED_LINKTYPES
from packetd.pairing.roundtrip import Roundtrip
from packetd.protocols.base import MAX_PENDING, DecodeError, DecoderContext, Direction, Message
from packetd.protocols.http1 import decoder as h1
from packetd.protocols.http1.decoder import Http1Decoder, State

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# pieces of HTTP/1 that reach every state: start lines, framing headers, chunked bodies, upgrades, tunnels
TOKENS = [
    b"GET / HTTP/1.1\r\n",
    b"HEAD /x HTTP/1.0\r\n",
    b"POST /p?q=1 HTTP/1.1\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\n",
    b"HTTP/1.0 204 No Content\r\n",
    b"HTTP/1.1 304 Not Modified\r\n",
    b"Host: a\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 0\r\n",
    b"Content-Length: 99999999\r\n",
    b"Content-Length: 3, 3\r\n",
    b"Content-Length: x\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Connection: close\r\n",
    b"Connection: Upgrade\r\nUpgrade: websocket\r\n",
    b"Upgrade: h2c\r\n",
    b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n",
    b"Content-Type: text/plain\r\n",
    b"\r\n",
    b"\n",
    b"hello",
    b"5\r\nhello\r\n",
    b"ffffffffffffffffff\r\n",
    b"0\r\n\r\n",
    b"0\r\nX-Trailer: 1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"\x00" * 40,
    b"A" * 9000,
]

chunks = st.one_of(st.sampled_from(TOKENS), st.binary(max_size=64))
# steps: data (direction, bytes), a gap (direction, size), an EOF (direction)
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("data"), st.sampled_from([0, 1]), st.lists(chunks, min_size=1, max_size=8).map(b"".join)
        ),
        st.tuples(st.just("gap"), st.sampled_from([0, 1]), st.integers(1, 100_000)),
        st.tuples(st.just("eof"), st.sampled_from([0, 1]), st.just(0)),
    ),
    max_size=30,
)


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)] if sizes else len(data)
        out.append(data[pos : pos + n])
        pos += n
        i += 1
    return out


def check_bounds(dec: Http1Decoder) -> None:
    """Every buffer within the bound its state names (h1's MAX_* constants)."""
    assert dec._methods.tracked <= MAX_PENDING
    for side in dec._sides:
        n = len(side.buf)
        if side.state is State.PAUSED:
            assert n <= h1.MAX_PAUSED
        elif side.state is State.CHUNK_SIZE:
            assert n <= h1.MAX_CHUNK_LINE
        elif side.state is State.HEAD and not side.synced:
            assert n <= h1.MAX_START_LINE
        else:
            assert n <= h1.MAX_HEAD, (side.state, n)


@FAST
@given(steps, st.lists(st.integers(1, 50), max_size=5), st.booleans())
def test_http1_decoder_only_messages_or_decode_error(
    script: list[tuple[str, int, object]], sizes: list[int], midstream: bool
) -> None:
    dec = Http1Decoder(DecoderContext(midstream=midstream))
    ts = 1
    for kind, d, arg in script:
        direction = Direction(d)
        pieces: list[object] = cut(arg, sizes) if kind == "data" else [arg]  # type: ignore[arg-type]
        for piece in pieces:
            ts += 1
            try:
                if kind == "data":
                    out = dec.receive(direction, memoryview(piece), ts)  # type: ignore[arg-type]
                elif kind == "gap":
                    out = dec.receive_gap(direction, piece, ts)  # type: ignore[arg-type]
                else:
                    out = dec.receive_eof(direction, ts)
            except DecodeError as exc:
                assert isinstance(exc.reason, str) and exc.reason
                dec = Http1Decoder(DecoderContext(midstream=True))  # what the session does
                continue
            for m in out:
                assert isinstance(m, Message)
                m.to_json()
            check_bounds(dec)


@FAST
@given(st.binary(min_size=1, max_size=3 * h1.MAX_HEAD // 2), st.sampled_from([0, 1]), st.integers(1, 9000))
def test_http1_decoder_never_buffers_past_its_bounds(blob: bytes, d: int, size: int) -> None:
    """A long run without a blank line (or without any newline) must raise or be dropped, not pile up."""
    for prefix in (b"", b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"):
        dec = Http1Decoder()
        data = prefix + blob.replace(b"\n", b"_")
        for piece in cut(data, [size]):
            try:
                dec.receive(Direction(d), memoryview(piece), 1)
            except DecodeError:
                dec = Http1Decoder(DecoderContext(midstream=True))
            check_bounds(dec)


# -- the whole engine -----------------------------------------------------------------------------------------
RULES = (Rule(protocol="http", ports=(80, 8080)),)


def replay(fs: list[tuple[int, int, bytes]], tick: bool) -> list[Roundtrip]:
    eng, records = engine()
    for ts, lt, data in fs:
        eng.frame(ts, lt, memoryview(data))
    if tick:
        eng.tick(fs[-1][0] + 10**12)
    eng.finish()
    for r in records:
        r.to_json()
    assert eng.flows.stats.active == 0
    return records


def engine() -> tuple[Engine, list[Roundtrip]]:
    records: list[Roundtrip] = []
    return Engine(EngineConfig(rules=RULES), records.append), records


def tcp_frame(draw: st.DrawFn) -> tuple[int, bytes]:
    c = ("10.0.0.%d" % draw(st.integers(1, 3)), draw(st.sampled_from([40000, 40001, 80, 8080])))
    s = ("10.0.1.1", draw(st.sampled_from([80, 8080, 443])))
    src, dst = (c, s) if draw(st.booleans()) else (s, c)
    seq = draw(
        st.one_of(st.integers(0, 2**32 - 1), st.integers(1000, 1100), st.integers(2**32 - 100, 2**32 - 1))
    )
    ack = draw(st.one_of(st.integers(0, 2**32 - 1), st.integers(1000, 1100)))
    flags = draw(st.integers(0, 0x3F))
    payload = draw(st.one_of(st.lists(chunks, max_size=4).map(b"".join), st.binary(max_size=300)))
    if draw(st.booleans()):
        pkt = ipv6_tcp("fd00::1", "fd00::2", src[1], dst[1], seq, ack, flags, payload)
    else:
        pkt = ipv4_tcp(src[0], dst[0], src[1], dst[1], seq, ack, flags, payload)
    return 1, ethernet(pkt)


@st.composite
def frames(draw: st.DrawFn) -> list[tuple[int, int, bytes]]:
    out = []
    ts = 1_700_000_000 * 10**9
    for _ in range(draw(st.integers(1, 40))):
        ts += draw(st.one_of(st.integers(0, 1000), st.integers(0, 400 * 10**9)))
        kind = draw(st.integers(0, 4))
        if kind == 0:  # anything at all, under any link type we decode
            out.append(
                (ts, draw(st.sampled_from(sorted(SUPPORTED_LINKTYPES))), draw(st.binary(max_size=120)))
            )
        elif kind == 1:  # a valid TCP/IP packet, cut short or padded at random
            lt, frame = tcp_frame(draw)
            cut_at = draw(st.one_of(st.none(), st.integers(0, len(frame))))
            out.append(
                (ts, lt, frame[:cut_at] if cut_at is not None else frame + draw(st.binary(max_size=8)))
            )
        elif kind == 2:  # a valid UDP datagram on a rule port
            out.append(
                (ts, 1, ethernet(ipv4_udp("10.0.0.1", "10.0.1.1", 5353, 80, draw(st.binary(max_size=60)))))
            )
        elif kind == 3:  # an IPv4 fragment with random offset and flags
            body = draw(st.binary(min_size=8, max_size=80))
            pkt = bytearray(ipv4_tcp("10.0.0.1", "10.0.1.1", 40000, 80, 1, 1, 0x18, body))
            struct.pack_into("!H", pkt, 4, draw(st.integers(0, 3)))  # identification
            struct.pack_into("!H", pkt, 6, draw(st.integers(0, 0xFFFF)))  # flags + fragment offset
            out.append((ts, 1, ethernet(bytes(pkt))))
        else:  # a valid TCP/IP packet with one byte of its headers flipped
            lt, frame = tcp_frame(draw)
            pos = draw(st.integers(0, min(len(frame), 14 + 40) - 1))
            b = bytearray(frame)
            b[pos] ^= draw(st.integers(1, 255))
            out.append((ts, lt, bytes(b)))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_engine_survives_any_frames(fs: list[tuple[int, int, bytes]]) -> None:
    replay(fs, tick=True)


@st.composite
def conversations(draw: st.DrawFn) -> list[tuple[int, int, bytes]]:
    """A TCP connection carrying half-valid HTTP both ways, its segments dropped, repeated and shuffled."""
    from packetd.capture.pcapwrite import TcpConversation

    c = TcpConversation(
        ("10.0.0.1", 40000),
        ("10.0.1.1", 80),
        isn_client=draw(st.integers(0, 2**32 - 1)),
        isn_server=draw(st.integers(0, 2**32 - 1)),
        mss=draw(st.integers(1, 600)),
    )
    pkts = list(c.handshake()) if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 6))):
        side = draw(st.sampled_from([0, 1]))
        pkts += list(c.send(side, draw(st.lists(chunks, min_size=1, max_size=6).map(b"".join))))
    if draw(st.booleans()):
        pkts += list(c.close())
    keep = [p for p in pkts if draw(st.integers(0, 9)) > 0]  # ~10% lost
    keep += draw(st.lists(st.sampled_from(keep), max_size=5)) if keep else []  # duplicates
    keep = draw(st.permutations(keep)) if draw(st.booleans()) else keep
    ts = 1_700_000_000 * 10**9
    out = []
    for p in keep:
        ts += draw(st.one_of(st.integers(1, 1000), st.integers(0, 3 * 10**9)))
        out.append((ts, 1, ethernet(p)))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_engine_survives_lossy_reordered_conversations(fs: list[tuple[int, int, bytes]]) -> None:
    replay(fs, tick=False)


@pytest.mark.parametrize("linktype", sorted(SUPPORTED_LINKTYPES))
def test_engine_survives_truncated_headers(linktype: int) -> None:
    """Every prefix of a valid frame, under every link type."""
    eng, _ = engine()
    frame = ethernet(ipv4_tcp("10.0.0.1", "10.0.1.1", 40000, 80, 1, 1, 0x18, b"GET / HTTP/1.1\r\n\r\n"))
    for n in range(len(frame) + 1):
        eng.frame(1, linktype, memoryview(frame[:n]))
        eng.frame(2, linktype, memoryview(frame[14:][:n]))
    eng.finish()


def test_http1_role_swap_with_a_message_in_progress() -> None:
    """Roles are corrected only while nothing is framed: once a response is open, a status line from the
    other side is garbage (DecodeError), not a second swap that would finish a response as a request."""
    from packetd.protocols.base import SwapRoles

    dec = Http1Decoder()
    out = dec.receive(Direction.C2S, memoryview(b"HTTP/1.1 200 OK\r\n\r\n"), 1)
    assert isinstance(out[0], SwapRoles)  # that side is the server's; its response runs to the close
    with pytest.raises(DecodeError):  # the session now labels the other direction C2S
        dec.receive(Direction.C2S, memoryview(b"HTTP/1.1 200 OK\r\n0\r\n\r\n"), 2)
    msgs = dec.receive_eof(Direction.S2C, 3)
    assert [type(m).__name__ for m in msgs] == ["Response"]


# -- every decoder, 10 000 corpus-seeded mutated inputs each (tests/helpers/fuzzing_campaign.py) ----------------
from packetd.protocols.registry import REGISTRY  # noqa: E402
from tests.helpers import fuzzing_campaign as campaign  # noqa: E402

CI_INPUTS = 10_000  # per decoder: issue 14's floor for CI; `make fuzz` runs 1 M (measured in the report)


@pytest.fixture(scope="module")
def corpus_seeds() -> dict[str, list[campaign.Conversation]]:
    return campaign.corpus_seeds()


@pytest.mark.parametrize("protocol", REGISTRY.names())
def test_every_decoder_survives_mutated_corpus_inputs(
    protocol: str, corpus_seeds: dict[str, list[campaign.Conversation]]
) -> None:
    """Only messages or DecodeError, held bytes bounded, for inputs mutated from the real captures' streams
    (fixed seed: a failure here replays exactly; the message names the input's index)."""
    seeds = corpus_seeds.get(protocol)
    assert seeds, f"no seed conversations for {protocol}: is the shared corpus at {campaign.CORPUS}?"
    stats = campaign.fuzz(protocol, seeds, CI_INPUTS, seed=14)
    assert stats.inputs == CI_INPUTS
    assert stats.messages > 0 and stats.decode_errors > 0  # the inputs reach both outcomes
    assert [(f.index, f.kind, f.where, f.message[:200]) for f in stats.failures] == []


# inputs the campaign found that raised something other than DecodeError, kept as regression cases:
# (protocol, transport, events)
FOUND: dict[str, tuple[str, str, list[campaign.Event]]] = {
    # an SSLRequest, the server's EOF, then a byte from the server: AssertionError in _ssl_answer
    "postgresql-ssl-answer-after-eof": (
        "postgresql",
        "tcp",
        [("data", 0, bytes.fromhex("0000000804d2162f")), ("eof", 1, 0), ("data", 1, b"N")],
    ),
    # joining mid-stream: a candidate OP_REPLY header stating 21 bytes, 32 bytes in hand: struct.error in
    # _find_message (the check for a zero-document reply read 20 fixed bytes the buffer did not have)
    "mongodb-short-reply-candidate": (
        "mongodb",
        "tcp",
        [("gap", 1, 100), ("data", 1, struct.pack("<iiii", 21, 8, 7, 1) + bytes(16))],
    ),
}


@pytest.mark.parametrize("name", sorted(FOUND))
def test_campaign_findings_raise_only_decode_error(name: str) -> None:
    protocol, transport, events = FOUND[name]
    for splits in (None, [1]):
        campaign.run_input(campaign.factory_for(protocol), transport, events, splits, True)


def test_the_campaign_harness_reports_what_is_not_a_decode_error() -> None:
    """The harness itself can fail: a decoder that raises KeyError on some input is caught by run_input,
    and one that returns a non-message is too (so a green campaign means something)."""

    class Broken:
        def __init__(self, ctx: DecoderContext) -> None:
            pass

        def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> list[Message]:
            data = bytes(data)  # type: ignore[assignment]
            if b"\xff" in data:
                raise KeyError("boom")
            if b"\xfe" in data:
                return ["not a message"]  # type: ignore[list-item]
            if b"\xfd" in data:
                raise DecodeError("fine")
            return []

        def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> list[Message]:
            return []

        def receive_eof(self, direction: Direction, ts_ns: int) -> list[Message]:
            return []

    assert campaign.run_input(Broken, "tcp", [("data", 0, b"\xfd"), ("data", 1, b"ok")], None, True)[:2] == (
        0,
        1,
    )
    with pytest.raises(KeyError):
        campaign.run_input(Broken, "tcp", [("data", 0, b"a\xffb")], [1], False)
    with pytest.raises(AssertionError, match="non-message"):
        campaign.run_input(Broken, "tcp", [("data", 1, b"\xfe")], None, False)
