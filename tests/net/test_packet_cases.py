"""PacketDecoder on packets built byte by byte: IPv4 options, IPv6 extension headers, fragments in every
order, Ethernet padding, PPPoE/MPLS, offload-sized packets, truncation at every length, random bytes.

The truth is tshark's reading of the same bytes where tshark has an opinion, otherwise the bytes the test
put in (the payload is known because the test wrote it)."""

from __future__ import annotations

import os
import random
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.capture.pcapwrite import PcapWriter
from packetd.net.packet import (
    SUPPORTED_LINKTYPES,
    NetStats,
    PacketDecoder,
    Segment,
)
from tests.net.truth import TSHARK, Truth, our_segments, segment_truth, tshark_segments

needs_tshark = pytest.mark.skipif(TSHARK is None, reason="needs tshark")

MAC = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
A4, B4 = socket.inet_aton("10.1.2.3"), socket.inet_aton("192.0.2.99")
A6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
B6 = socket.inet_pton(socket.AF_INET6, "2001:db8:ffff::abcd")
T0 = 1_700_000_000_000_000_000


def tcp(sport: int, dport: int, seq: int, payload: bytes, options: bytes = b"", flags: int = 0x18) -> bytes:
    assert len(options) % 4 == 0
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 7, doff << 4, flags, 65535, 0, 0) + options + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(
    proto: int, body: bytes, options: bytes = b"", ident: int = 1, frag: int = 0, total: int = -1
) -> bytes:
    assert len(options) % 4 == 0
    ihl = 5 + len(options) // 4
    length = 4 * ihl + len(body) if total < 0 else total
    head = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, ident, frag, 64, proto, 0, A4, B4)
    return head + options + body


def ipv6(nxt: int, body: bytes, plen: int = -1) -> bytes:
    length = len(body) if plen < 0 else plen
    return struct.pack("!IHBB16s16s", 6 << 28, length, nxt, 64, A6, B6) + body


def ext(nxt: int, size8: int = 0, fill: int = 0) -> bytes:
    """A hop-by-hop/routing/destination-options header of (size8 + 1) * 8 bytes."""
    return bytes([nxt, size8]) + bytes([fill]) * (6 + 8 * size8)


def ah(nxt: int, words: int = 4) -> bytes:
    """An authentication header of (words + 2) * 4 bytes (RFC 4302: payload length = words)."""
    return bytes([nxt, words, 0, 0]) + b"\x00\x00\x01\x00" + b"\x00\x00\x00\x05" + b"\xaa" * (4 * words - 4)


def frag6(nxt: int, offset: int, more: bool, ident: int) -> bytes:
    return struct.pack("!BBHI", nxt, 0, offset | int(more), ident)


def eth(packet: bytes, ethertype: int | None = None) -> bytes:
    if ethertype is None:
        ethertype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    return MAC + struct.pack("!H", ethertype) + packet


def write(path: str, frames: list[bytes], linktype: int = 1) -> str:
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype=linktype)
        for i, frame in enumerate(frames):
            w.write(T0 + i * 1000, frame)
    return path


def decode_all(frames: list[bytes], linktype: int = 1, dec: PacketDecoder | None = None) -> list[Truth]:
    dec = dec or PacketDecoder()
    out = []
    for i, frame in enumerate(frames):
        seg = dec.decode(T0 + i * 1000, linktype, memoryview(frame))
        if seg is not None:
            out.append(segment_truth(seg))
    return out


def accounted(s: NetStats) -> int:
    """Frames accounted for by the counters (see NetStats): must equal s.frames."""
    return (
        s.segments
        + s.non_ip
        + s.other_transport
        + s.malformed
        + s.bad_linktype
        + s.filtered_ip_version
        + s.loopback_duplicates
        + s.fragments
        - s.reassembled
    )


def check_with_tshark(tmp_path: object, frames: list[bytes], expected_count: int) -> list[Truth]:
    path = write(os.path.join(str(tmp_path), "t.pcap"), frames)
    truth = tshark_segments(path)
    assert len(truth) == expected_count
    dec = PacketDecoder()
    assert our_segments(path, dec) == truth
    assert accounted(dec.stats) == dec.stats.frames == len(frames)
    return truth


# --- IPv4 options, IPv6 extension headers ---------------------------------------------------------------


@needs_tshark
def test_ipv4_options(tmp_path: object) -> None:
    frames = []
    for words in range(1, 11):  # IHL 6..15
        opts = (b"\x01" * (4 * words - 1)) + b"\x00"  # NOPs then end of options
        frames.append(eth(ipv4(6, tcp(1000 + words, 80, 100 * words, b"T%d" % words), opts)))
        frames.append(eth(ipv4(17, udp(2000 + words, 53, b"U%d" % words), opts)))
    frames.append(eth(ipv4(51, ah(6) + tcp(1, 2, 3, b"AH"))))  # IPsec AH in transport mode
    truth = check_with_tshark(tmp_path, frames, 21)
    assert [t[7] for t in truth[:2]] == [b"T1", b"U1"]
    assert truth[-1][7] == b"AH"


@needs_tshark
def test_ipv6_extension_headers(tmp_path: object) -> None:
    chains = [
        [],
        [(0, 0)],  # hop-by-hop
        [(0, 1), (43, 0), (60, 2)],  # hop-by-hop, routing, destination options
        [(60, 0), (51, 4)],  # destination options, AH
        [(51, 6)],
        [(0, 0), (140, 0)],  # shim6
    ]
    frames = []
    for n, chain in enumerate(chains):
        for proto, body in (
            (6, tcp(3000 + n, 443, 5000 + n, b"tcp%d" % n)),
            (17, udp(4000 + n, 53, b"udp%d" % n)),
        ):
            headers = b""
            kinds = [k for k, _ in chain]
            for i, (kind, size) in enumerate(chain):
                nxt = kinds[i + 1] if i + 1 < len(chain) else proto
                headers += ah(nxt, size) if kind == 51 else ext(nxt, size)
            first = kinds[0] if kinds else proto
            frames.append(eth(ipv6(first, headers + body)))
    truth = check_with_tshark(tmp_path, frames, 2 * len(chains))
    assert {t[7] for t in truth} == {b"tcp%d" % n for n in range(6)} | {b"udp%d" % n for n in range(6)}


def test_ipv6_terminal_headers_are_other_transport() -> None:
    """ESP (50), no next header (59), mobility (135) and HIP (139) carry no TCP/UDP we can read."""
    dec = PacketDecoder()
    for nh in (50, 59, 135, 139, 58):
        assert dec.decode(T0, 1, memoryview(eth(ipv6(nh, ext(6) + tcp(1, 2, 3, b"x"))))) is None
    assert dec.stats.other_transport == 5


# --- fragments ---------------------------------------------------------------------------------------


def v4_fragments(proto: int, body: bytes, sizes: list[int], ident: int, options: bytes = b"") -> list[bytes]:
    out, off = [], 0
    for i, size in enumerate([*sizes, len(body)]):
        piece = body[off : off + size]
        more = i < len(sizes)
        out.append(eth(ipv4(proto, piece, options, ident, (off >> 3) | (0x2000 if more else 0))))
        off += len(piece)
        if off >= len(body):
            break
    return out


def v6_fragments(proto: int, body: bytes, size: int, ident: int, hop_by_hop: bool = False) -> list[bytes]:
    """Fragments of `body` (whose first header is `proto`), optionally after a hop-by-hop header (the
    unfragmentable part, repeated in every fragment)."""
    out = []
    for off in range(0, len(body), size):
        fh = frag6(proto, off, off + size < len(body), ident)
        piece = body[off : off + size]
        out.append(eth(ipv6(0, ext(44) + fh + piece) if hop_by_hop else ipv6(44, fh + piece)))
    return out


ORDERS = {
    "in_order": lambda fr: fr,
    "reversed": lambda fr: fr[::-1],
    "shuffled": lambda fr: random.Random(7).sample(fr, len(fr)),
    "duplicated": lambda fr: [fr[0], *fr[:-1], fr[1], fr[-1]],
}


@needs_tshark
@pytest.mark.parametrize("order", sorted(ORDERS))
def test_ipv4_fragments(order: str, tmp_path: object) -> None:
    data = bytes(range(256)) * 12
    frames = ORDERS[order](v4_fragments(17, udp(5353, 53, data), [1480, 1480], 0x1234))
    frames += ORDERS[order](
        v4_fragments(6, tcp(40000, 80, 99, data[:2000]), [512, 768], 0x1235, b"\x01\x01\x01\x00")
    )
    frames.append(eth(ipv4(17, udp(1, 2, b"after"))))
    truth = check_with_tshark(tmp_path, frames, 3)
    assert truth[0][7] == data and truth[1][7] == data[:2000]


@needs_tshark
@pytest.mark.parametrize("order", sorted(ORDERS))
def test_ipv6_fragments(order: str, tmp_path: object) -> None:
    data = bytes(range(251)) * 12
    body = udp(5353, 53, data)
    frames = ORDERS[order](v6_fragments(17, body, 1232, 0xBDF648CE))
    # a hop-by-hop header before the fragment header (unfragmentable part), and a destination-options
    # header after it (the fragmentable part): the walk continues in the reassembled payload
    body2 = ext(6, 1) + tcp(50000, 443, 123456, data[:1700])
    frames += ORDERS[order](v6_fragments(60, body2, 800, 77, hop_by_hop=True))
    truth = check_with_tshark(tmp_path, frames, 2)
    assert truth[0][7] == data and truth[1][7] == data[:1700]


def test_ipv6_fragment_next_header_of_the_first_fragment_counts() -> None:
    """RFC 8200 §4.5: the Next Header of non-first fragments may differ; the offset-zero one's is used."""
    body = udp(7, 9, b"x" * 100)
    a = eth(ipv6(44, frag6(17, 0, True, 5) + body[:56]))
    b = eth(ipv6(44, frag6(6, 56, False, 5) + body[56:]))  # says TCP, but it is the same datagram
    for frames in ([a, b], [b, a]):
        got = decode_all(frames)
        assert got == [(T0 + 1000, 17, "2001:db8::1", "2001:db8:ffff::abcd", 7, 9, 0, b"x" * 100)]


def test_overlapping_fragments_discard_the_datagram() -> None:
    body = udp(7, 9, bytes(range(200)))
    first = eth(ipv4(17, body[:96], ident=3, frag=0x2000))
    overlap = eth(ipv4(17, body[88:160], ident=3, frag=(88 >> 3) | 0x2000))
    last = eth(ipv4(17, body[96:], ident=3, frag=96 >> 3))
    dec = PacketDecoder()
    assert decode_all([first, overlap, last], dec=dec) == []
    assert dec.reassembler.stats.dropped_overlap == 1
    # an exact retransmission of a fragment is not an overlap
    dec = PacketDecoder()
    got = decode_all([first, first, last], dec=dec)
    assert [t[7] for t in got] == [bytes(range(200))]
    assert accounted(dec.stats) == dec.stats.frames == 3


# --- link layer details ---------------------------------------------------------------------------------


@needs_tshark
def test_ethernet_padding_never_reaches_the_payload(tmp_path: object) -> None:
    frames = [
        eth(ipv4(6, tcp(1, 2, 3, b"ab"))) + b"\xee" * 4,  # padded to the 60-byte minimum
        eth(ipv4(17, udp(1, 2, b"c"))) + b"\xee" * 17,
        eth(ipv6(17, udp(1, 2, b"d"))) + b"\xee" * 8 + b"FCS!",  # a trailer and a frame check sequence
        eth(ipv6(6, tcp(1, 2, 3, b""))) + b"\xee" * 20,
    ]
    assert [len(f) for f in frames] == [60, 60, 75, 94]
    truth = check_with_tshark(tmp_path, frames, 4)
    assert [t[7] for t in truth] == [b"ab", b"c", b"d", b""]


@needs_tshark
def test_pppoe_and_mpls(tmp_path: object) -> None:
    pppoe = b"\x11\x00\x12\x34"
    frames = [
        eth(pppoe + struct.pack("!HH", 2 + 48, 0x0021) + ipv4(6, tcp(1, 2, 3, b"ppp4")), 0x8864),
        eth(pppoe + struct.pack("!HH", 2 + 68, 0x0057) + ipv6(17, udp(1, 2, b"ppp6")), 0x8864),
        eth(b"\x00\x01\x40\x40" + b"\x00\x02\x01\x40" + ipv4(17, udp(3, 4, b"mpls4")), 0x8847),
        eth(b"\x00\x03\x01\x40" + ipv6(6, tcp(3, 4, 5, b"mpls6")), 0x8847),
    ]
    truth = check_with_tshark(tmp_path, frames, 4)
    assert [t[7] for t in truth] == [b"ppp4", b"ppp6", b"mpls4", b"mpls6"]


@needs_tshark
def test_ipv4_total_length_zero_is_a_segmentation_offload_capture(tmp_path: object) -> None:
    """A capture taken before TSO/GSO (or IPv4 BIG TCP) carries Total Length 0: tshark, like us, then
    reads the packet to the end of the frame."""
    frames = [eth(ipv4(6, tcp(1, 2, 3, b"x" * 3000), total=0))]
    truth = check_with_tshark(tmp_path, frames, 1)
    assert truth[0][7] == b"x" * 3000


def test_ipv6_payload_length_zero_reads_to_the_end_of_the_frame() -> None:
    """IPv6 BIG TCP / GSO captures carry Payload Length 0 (tshark 4.0 shows no payload there; libpcap's
    tcpdump and the kernel read the packet to the end of the frame, as we do)."""
    got = decode_all([eth(ipv6(6, tcp(1, 2, 3, b"y" * 70000), plen=0))])
    assert [t[7] for t in got] == [b"y" * 70000]


def test_loopback_duplicates_are_dropped_once() -> None:
    """SLL/SLL2: the outgoing copy on a loopback device is a duplicate; outgoing elsewhere is not."""
    pkt = ipv4(6, tcp(1, 2, 3, b"dup"))
    sll = lambda pkttype, hatype: struct.pack("!HHH8sH", pkttype, hatype, 6, b"\0" * 8, 0x0800) + pkt  # noqa: E731
    sll2 = lambda pkttype, hatype: struct.pack("!HHIHBB8s", 0x0800, 0, 1, hatype, pkttype, 6, b"\0" * 8) + pkt  # noqa: E731
    for lt, make in ((113, sll), (276, sll2)):
        dec = PacketDecoder()
        got = decode_all([make(4, 772), make(0, 772), make(4, 1), make(0, 1)], lt, dec)
        assert len(got) == 3 and dec.stats.loopback_duplicates == 1


# --- truncation and random bytes --------------------------------------------------------------------------


HEADERS = {  # linktype -> link-layer header for an IPv4 packet
    1: MAC + b"\x08\x00",
    113: struct.pack("!HHH8sH", 0, 1, 6, b"\0" * 8, 0x0800),
    276: struct.pack("!HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, b"\0" * 8),
    0: struct.pack("<I", 2),
    108: struct.pack(">I", 2),
    101: b"",
}


@pytest.mark.parametrize("linktype", sorted(HEADERS))
@pytest.mark.parametrize("transport", ["tcp", "tcp_options", "udp", "ipv4_options"])
def test_truncated_at_every_length(linktype: int, transport: str) -> None:
    """Cut a frame after every byte: a segment exactly when sport..flags (TCP, 14 bytes) or sport, dport,
    length (UDP, 6 bytes) were captured, with the captured part of the payload; otherwise None, counted."""
    payload = b"0123456789abcdef"
    l2 = HEADERS[linktype]
    if transport == "udp":
        pkt, l4, head, fixed = ipv4(17, udp(5, 6, payload)), 20, 8, 6
    elif transport == "tcp_options":
        pkt, l4, head, fixed = ipv4(6, tcp(5, 6, 7, payload, b"\x01" * 12)), 20, 32, 14
    elif transport == "ipv4_options":
        pkt, l4, head, fixed = ipv4(6, tcp(5, 6, 7, payload), b"\x01\x01\x01\x00"), 24, 20, 14
    else:
        pkt, l4, head, fixed = ipv4(6, tcp(5, 6, 7, payload)), 20, 20, 14
    frame = l2 + pkt
    proto = 17 if transport == "udp" else 6
    for cut in range(len(frame) + 1):
        dec = PacketDecoder()
        seg = dec.decode(T0, linktype, memoryview(frame[:cut]))
        assert accounted(dec.stats) == 1
        start = len(l2) + l4
        if cut < start + fixed:
            assert seg is None, cut
            continue
        assert seg is not None, cut
        want = payload[: max(0, cut - (start + head))]
        assert segment_truth(seg) == (
            T0,
            proto,
            "10.1.2.3",
            "192.0.2.99",
            5,
            6,
            0 if proto == 17 else 7,
            want,
        )


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(SUPPORTED_LINKTYPES | {999})), st.binary(max_size=120))
def test_random_bytes_never_raise(linktype: int, data: bytes) -> None:
    dec = PacketDecoder()
    seg = dec.decode(T0, linktype, memoryview(data))
    assert seg is None or isinstance(seg, Segment)
    assert accounted(dec.stats) == dec.stats.frames == 1


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1, 101]), st.binary(min_size=1, max_size=80), st.integers(0, 60), st.integers(0, 255))
def test_mutated_packets_never_raise(linktype: int, junk: bytes, pos: int, value: int) -> None:
    """Valid frames with one byte changed and random bytes appended."""
    base = [
        ipv4(6, tcp(1, 2, 3, b"abc")),
        ipv6(0, ext(6) + tcp(1, 2, 3, b"abc")),
        ipv6(44, frag6(17, 0, True, 1) + b"x" * 16),
    ]
    for pkt in base:
        frame = bytearray((HEADERS[1] if linktype == 1 else b"") + pkt + junk)
        frame[pos % len(frame)] = value
        dec = PacketDecoder()
        seg = dec.decode(T0, linktype, memoryview(bytes(frame)))
        assert seg is None or isinstance(seg, Segment)
        assert accounted(dec.stats) == 1
