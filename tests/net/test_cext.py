"""The C accelerator (net/_packet.c) against the pure path it stands in for: the same frames through a
PacketDecoder with the accelerator and one without it (`fast = None`, the reference) give the same Segments
(every field; the payload's type and bytes) and the same NetStats, frame by frame.

Inputs: every corpus capture, every bench/out/real capture, real frames of each link type cut after every
byte, crafted edge cases (IPv4 options, IPv6 extension headers, fragments, bad lengths, VLAN stacks, loopback
duplicates, IP version filters) and Hypothesis-made and mutated bytes. The accelerator is only built by the
compiled build (`make wheel`); elsewhere these tests skip, except in `make test-compiled`
(PACKETD_EXPECT_BUILD=compiled), where a missing accelerator fails them.
"""

from __future__ import annotations

import glob
import os
import struct
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.capture.pcapfile import CaptureFile
from packetd.net.packet import FAST_DECODE, SUPPORTED_LINKTYPES, NetStats, PacketDecoder, Segment
from tests.helpers.golden import ROOT
from tests.net.test_packet_cases import (
    HEADERS,
    MAC,
    T0,
    ah,
    eth,
    ext,
    frag6,
    ipv4,
    ipv6,
    tcp,
    udp,
    v4_fragments,
    v6_fragments,
)
from tests.net.truth import CORPUS

pytestmark = pytest.mark.skipif(
    FAST_DECODE is None and os.environ.get("PACKETD_EXPECT_BUILD") != "compiled",
    reason="the C accelerator is not built (PACKETD_CEXT=1 or the compiled build) or PACKETD_PURE=1",
)

REAL = sorted(glob.glob(os.path.join(ROOT, "bench", "out", "real", "*.pcap")))
Frame = tuple[int, int, memoryview]


def fields(seg: Segment | None) -> tuple[object, ...] | None:
    if seg is None:
        return None
    return (
        seg.ts_ns,
        seg.transport,
        seg.src,
        seg.dst,
        seg.sport,
        seg.dport,
        seg.seq,
        seg.ack,
        seg.flags,
        type(seg.payload),
        bytes(seg.payload),
        seg.key,
        seg.window,
        seg.wscale,
    )


def counters(s: NetStats) -> tuple[int, ...]:
    return (
        s.frames,
        s.segments,
        s.non_ip,
        s.other_transport,
        s.malformed,
        s.bad_linktype,
        s.fragments,
        s.reassembled,
        s.filtered_ip_version,
        s.loopback_duplicates,
    )


def compare(frames: Iterable[Frame], ip_versions: frozenset[int] = frozenset({4, 6})) -> int:
    """Decode `frames` with and without the accelerator; assert the same results and counters after every
    frame. Returns how many frames the accelerator decoded itself (so a test can tell it was exercised)."""
    assert FAST_DECODE is not None, "the compiled build has no C accelerator (net/_packet.c)"
    fast, pure = PacketDecoder(ip_versions), PacketDecoder(ip_versions)
    pure.fast = None
    ipv = int(4 in ip_versions) | int(6 in ip_versions) << 1
    handled = 0
    for i, (ts, lt, data) in enumerate(frames):
        direct = FAST_DECODE(ts, lt, data, ipv)
        got, want = fast.decode(ts, lt, data), pure.decode(ts, lt, data)
        assert fields(got) == fields(want), (i, lt, bytes(data).hex())
        assert counters(fast.stats) == counters(pure.stats), (i, lt, bytes(data).hex())
        if direct is not None:
            assert fields(direct) == fields(want), (i, lt, bytes(data).hex())
            handled += 1
    return handled


def capture(path: str) -> list[Frame]:
    return [(ts, lt, memoryview(bytes(d))) for ts, lt, d in CaptureFile(path)]


@pytest.mark.skipif(not CORPUS, reason="needs the corpus (/work/shared/corpus)")
def test_every_corpus_capture() -> None:
    handled = frames = 0
    for path in CORPUS:
        got = capture(path)
        handled += compare(got)
        frames += len(got)
    assert handled > frames // 2  # the common case is common


@pytest.mark.skipif(not REAL, reason="needs bench/out/real (recorded real captures)")
@pytest.mark.parametrize("path", REAL, ids=[os.path.basename(p) for p in REAL])
def test_every_real_capture(path: str) -> None:
    # as CaptureFile yields them: views into the reader's buffer, not copies
    assert compare(CaptureFile(path)) > 0


def test_ip_version_filters() -> None:
    frames = [(T0, 1, memoryview(eth(p))) for p in (ipv4(6, tcp(1, 2, 3, b"a")), ipv6(17, udp(1, 2, b"b")))]
    for versions in ({4}, {6}, {4, 6}, set()):
        compare(frames, frozenset(versions))


def _link(linktype: int, packet: bytes) -> bytes:
    """`packet` (IPv4 or IPv6) framed for `linktype`."""
    v6 = packet[0] >> 4 == 6
    if linktype == 1:
        return eth(packet)
    if linktype == 113:
        return struct.pack("!HHH8sH", 0, 1, 6, b"\0" * 8, 0x86DD if v6 else 0x0800) + packet
    if linktype == 276:
        return struct.pack("!HHIHBB8s", 0x86DD if v6 else 0x0800, 0, 1, 1, 0, 6, b"\0" * 8) + packet
    if linktype in (0, 108):
        return struct.pack("<I" if linktype == 0 else ">I", 30 if v6 else 2) + packet
    return packet


SYN_OPTIONS = b"\x02\x04\x05\xb4\x04\x02\x08\x0a" + b"\x00" * 8 + b"\x01\x03\x03\x07"
PACKETS = {
    "v4_tcp": ipv4(6, tcp(40000, 80, 1, b"GET / HTTP/1.1\r\n\r\n")),
    "v4_syn": ipv4(6, tcp(40000, 80, 1, b"", SYN_OPTIONS, flags=0x02)),
    "v4_udp": ipv4(17, udp(5353, 53, b"\x12\x34\x01\x00" + b"\x00" * 8)),
    "v4_options": ipv4(6, tcp(1, 2, 3, b"opt"), b"\x01\x01\x01\x00"),
    "v6_tcp": ipv6(6, tcp(40000, 6379, 9, b"*1\r\n$4\r\nPING\r\n")),
    "v6_syn": ipv6(6, tcp(40000, 6379, 9, b"", SYN_OPTIONS, flags=0x12)),
    "v6_udp": ipv6(17, udp(1, 53, b"q" * 12)),
}


@pytest.mark.parametrize("linktype", sorted(HEADERS | {12: b"", 14: b"", 228: b"", 229: b""}))
@pytest.mark.parametrize("name", sorted(PACKETS))
def test_truncated_at_every_length(linktype: int, name: str) -> None:
    frame = _link(linktype, PACKETS[name])
    if (linktype == 228 and name.startswith("v6")) or (linktype == 229 and name.startswith("v4")):
        pytest.skip("raw IPv4/IPv6 link types carry their own version only")
    assert compare([(T0, linktype, memoryview(frame[:cut])) for cut in range(len(frame) + 1)]) > 0


def test_real_frames_truncated_at_every_length() -> None:
    """The first frames of each real capture (a handshake with its options, requests, responses), cut
    after every byte."""
    frames: list[Frame] = []
    for path in REAL or CORPUS[:10]:
        for k, (ts, lt, d) in enumerate(CaptureFile(path)):
            whole = bytes(d[:200])
            frames.extend((ts, lt, memoryview(whole[:cut])) for cut in range(len(whole) + 1))
            if k == 3:
                break
    assert compare(frames) > 0


def _crafted() -> list[tuple[int, bytes]]:
    body = tcp(1, 2, 3, b"x" * 64)
    v4, v6 = ipv4(6, body), ipv6(6, body)
    out: list[tuple[int, bytes]] = [
        # headers that are not the common case: the pure path decodes these
        (1, eth(ipv4(6, body, b"\x94\x04\x00\x00"))),  # router alert option
        (1, eth(ipv4(51, ah(6) + body))),
        (1, eth(ipv6(0, ext(6) + body))),
        (1, eth(ipv6(60, ext(43, 1) + ext(17) + udp(1, 2, b"u")))),
        (1, eth(ipv6(51, ah(6) + body))),
        (1, eth(ipv6(50, b"\x00" * 40))),  # ESP
        (1, eth(ipv6(58, b"\x80\x00" + b"\x00" * 30))),  # ICMPv6
        (1, eth(ipv4(1, b"\x08\x00" + b"\x00" * 30))),  # ICMP
        *((1, f) for f in v4_fragments(6, body, [16, 24], 7)),
        *((1, f) for f in v6_fragments(6, body, 32, 9)),
        (1, eth(ipv6(44, frag6(6, 0, False, 5) + body))),  # an atomic fragment
        # bad lengths
        (1, eth(ipv4(6, body, total=0))),  # before segmentation offload: to the end of the frame
        (1, eth(ipv4(6, body, total=10))),  # shorter than its header
        (1, eth(ipv4(6, body, total=30))),  # ends inside the TCP header
        (1, eth(ipv4(6, body, total=2000))),  # longer than the frame (snapped)
        (1, eth(ipv4(17, struct.pack("!HHHH", 1, 2, 4, 0) + b"u"))),  # UDP length < 8
        (1, eth(ipv4(17, struct.pack("!HHHH", 1, 2, 900, 0) + b"u"))),  # UDP length past the packet
        (1, eth(ipv4(17, udp(1, 2, b"u" * 9), total=24))),  # the IP packet ends inside the UDP header
        (1, eth(ipv6(6, body, plen=0))),
        (1, eth(ipv6(6, body, plen=8))),
        (1, eth(ipv6(6, body, plen=5000))),
        (1, eth(ipv6(17, udp(1, 2, b"u"), plen=3))),
        (1, eth(ipv4(6, body) + b"\x00" * 20)),  # Ethernet padding
        (1, eth(b"\x46" + v4[1:])),  # IHL 6 without the option bytes
        (1, eth(b"\x44" + v4[1:])),  # IHL below 5
        (1, eth(b"\x65" + v4[1:])),  # the wrong version in an IPv4 ethertype
        (1, eth(b"\x45" + v6[1:], 0x86DD)),
        (1, eth(v4[:20] + body[:12] + b"\x40" + body[13:])),  # TCP data offset < 5
        (1, eth(v4[:20] + body[:12] + b"\xf0" + body[13:])),  # TCP data offset past the packet
        (1, eth(v4[:20] + body[:12] + b"\x51" + body[13:])),  # the reserved/NS bits set
        (1, eth(ipv4(6, tcp(1, 2, 3, b"", b"\x03\x03\x0e\x00", flags=0x02)))),  # wscale 14
        (1, eth(ipv4(6, tcp(1, 2, 3, b"", b"\x03\x03\xff\x00", flags=0x02)))),  # wscale > 14: 14
        (1, eth(ipv4(6, tcp(1, 2, 3, b"", b"\x03\x02\x07\x00", flags=0x02)))),  # a bad wscale length
        (1, eth(ipv4(6, tcp(1, 2, 3, b"", b"\x08\x00\x00\x00", flags=0x02)))),  # option length 0
        (1, eth(ipv4(6, tcp(1, 2, 3, b"", b"\x01\x01\x01\x03", flags=0x02)))),  # cut inside the option
        (1, eth(ipv4(6, tcp(1, 2, 3, b"", b"\x00\x03\x03\x07", flags=0x02)))),  # after end of options
        (1, eth(ipv4(6, tcp(1, 2, 0xFFFFFFFF, b"z", flags=0xFF)))),
        # link layers
        (1, MAC + b"\x81\x00\x00\x05\x08\x00" + v4),  # one VLAN tag
        (1, MAC + b"\x88\xa8\x00\x05\x81\x00\x00\x06\x91\x00\x00\x07\x86\xdd" + v6),  # a stack of three
        (1, MAC + b"\x81\x00\x00\x05"),  # a tag and nothing after it
        (1, MAC + b"\x88\x64" + b"\x11\x00\x00\x01\x00\x30\x00\x21" + v4),  # PPPoE
        (1, MAC + b"\x88\x47" + b"\x00\x01\x01\x40" + v4),  # MPLS
        (1, MAC + b"\x08\x06" + b"\x00" * 28),  # ARP
        (113, struct.pack("!HHH8sH", 4, 772, 6, b"\0" * 8, 0x0800) + v4),  # the loopback duplicate
        (113, struct.pack("!HHH8sH", 4, 1, 6, b"\0" * 8, 0x8100) + b"\x00\x05\x08\x00" + v4),
        (276, struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 4, 6, b"\0" * 8) + v4),
        (276, struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, b"\0" * 8) + v4),
        (0, struct.pack(">I", 2) + v4),  # NULL written by a big-endian host
        (0, struct.pack("<I", 24) + v6),
        (0, struct.pack("<I", 28) + v6),
        (0, struct.pack("<I", 10) + v6),  # Linux's AF_INET6 is not IPv6 in a BSD header
        (108, struct.pack(">I", 30) + v6),
        (108, struct.pack("<I", 2) + v4),
        (101, b"\x00" + v4[1:]),
        (228, v6),
        (229, v4),
        (999, eth(v4)),  # an unknown link type
        (1, b""),
    ]
    return out


def test_crafted_edge_cases() -> None:
    assert compare((T0 + i, lt, memoryview(f)) for i, (lt, f) in enumerate(_crafted())) > 0


def test_views_into_a_larger_buffer() -> None:
    """Frames as a reader hands them over: views at an offset inside one buffer."""
    frames = [_link(1, p) for p in PACKETS.values()]
    buf = b"".join(frames)
    views, off = [], 0
    for f in frames:
        views.append((T0, 1, memoryview(buf)[off : off + len(f)]))
        off += len(f)
    assert compare(views) == len(frames)


def test_a_released_view_raises_as_in_the_pure_path() -> None:
    view = memoryview(eth(PACKETS["v4_tcp"]))
    view.release()
    for fast in (FAST_DECODE, None):
        dec = PacketDecoder()
        dec.fast = fast
        with pytest.raises(ValueError, match="released"):
            dec.decode(T0, 1, view)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(SUPPORTED_LINKTYPES | {999})), st.binary(max_size=120))
def test_random_bytes(linktype: int, data: bytes) -> None:
    compare([(T0, linktype, memoryview(data))])


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(sorted(PACKETS)),
    st.sampled_from([1, 113, 276, 0, 108, 101]),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4),
    st.binary(max_size=16),
)
def test_mutated_packets(name: str, linktype: int, changes: list[tuple[int, int]], junk: bytes) -> None:
    """Valid frames with bytes changed (lengths, versions, offsets, flags) and random bytes appended."""
    frame = bytearray(_link(linktype, PACKETS[name]) + junk)
    for pos, value in changes:
        frame[pos % len(frame)] = value
    compare([(T0, linktype, memoryview(bytes(frame)))])
