"""L2-L4 decoding: a captured frame in, a TCP segment or UDP datagram out.

Hand-written (no scapy/dpkt): this runs once per packet, and a general dissector builds objects for every
layer where we need six integers and a memoryview. The path for Ethernet/IPv4/TCP is a handful of
`unpack_from` calls on the frame's memoryview; the payload is a slice of it, never a copy.

Link types (tcpdump.org/linktypes.html):

    1   EN10MB      dst(6) src(6) [0x8100/0x88a8/0x9100 tci(2)]* ethertype(2)
    113 LINUX_SLL   pkttype(2) hatype(2) halen(2) addr(8) protocol(2)
    276 LINUX_SLL2  protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8)
    0   NULL        address family, 4 bytes in the *capturing host's* byte order
    108 LOOP        address family, 4 bytes big-endian
    101 RAW, 12/14 (DLT_RAW on Linux/OpenBSD), 228 IPV4, 229 IPV6: the IP header comes first

Inside Ethernet or Linux cooked frames, a PPPoE session (0x8864, PPP protocol 0x0021/0x0057) or an MPLS
label stack (0x8847/0x8848, IP guessed from the first nibble after the bottom label) is unwrapped too.

IPv4 (RFC 791): options skipped via IHL; fragments reassembled (bounded, `Reassembler`); the payload is
cut to Total Length so Ethernet padding never reaches a decoder. IPv6 (RFC 8200): hop-by-hop, routing,
destination-options and shim6 headers are walked, fragments reassembled and the walk continued in the
reassembled payload; AH is skipped (in IPv4 too); ESP, mobility, HIP and anything else end the walk.

Snapped frames (caplen < wire length) decode what was captured: the payload is the captured part (empty
when the capture ends inside the TCP options), so the flow layer sees the missing bytes as a gap. A Total
Length (IPv4) or Payload Length (IPv6) of zero is what a capture taken before TCP segmentation offload (or
an IPv6 jumbogram) carries: the packet then extends to the end of the frame, as Wireshark reads it.

Duplicates: on Linux a loopback packet is seen twice by a socket that is not bound to `lo` (outgoing and
incoming copy); in SLL/SLL2 files (`tcpdump -i any`) the outgoing copy on a loopback device
(hatype ARPHRD_LOOPBACK) is dropped here so every packet is decoded once.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import Final

from packetd.net.reassembly import Reassembler

# link types
LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW_DLT12: Final = 12  # DLT_RAW on most BSDs and Linux
LINKTYPE_RAW_DLT14: Final = 14  # DLT_RAW on OpenBSD
LINKTYPE_RAW: Final = 101
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276
SUPPORTED_LINKTYPES = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW_DLT12,
        LINKTYPE_RAW_DLT14,
        LINKTYPE_RAW,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
    }
)
_RAW_TYPES = frozenset({LINKTYPE_RAW, LINKTYPE_RAW_DLT12, LINKTYPE_RAW_DLT14, LINKTYPE_IPV4, LINKTYPE_IPV6})

ETH_IPV4: Final = 0x0800
ETH_IPV6: Final = 0x86DD
ETH_PPPOE_SESSION: Final = 0x8864
ETH_MPLS: Final = 0x8847
ETH_MPLS_MULTICAST: Final = 0x8848
_ENCAPSULATIONS = frozenset({ETH_PPPOE_SESSION, ETH_MPLS, ETH_MPLS_MULTICAST})
_PPP_IPV4: Final = 0x0021
_PPP_IPV6: Final = 0x0057
_VLAN_TAGS = frozenset({0x8100, 0x88A8, 0x9100})
_PACKET_OUTGOING: Final = 4
_ARPHRD_LOOPBACK: Final = 772
# AF_INET6 of OpenBSD/NetBSD, FreeBSD, macOS: NULL and LOOP are BSD formats (Linux never writes them, and
# its AF_INET6 = 10 is not IPv6 on a BSD; Wireshark does not read 10 as IPv6 either)
_AF_INET6 = frozenset({24, 28, 30})

# Final: literals inlined by the compiled build, here and where they are imported (a plain module global is
# a dict lookup at each use, ~140 instructions: eight of them per packet in FlowTable._tcp_segment)
PROTO_TCP: Final = 6
PROTO_UDP: Final = 17

# TCP flags
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10

# hop-by-hop, routing, destination options, shim6: (next header, length in 8 octets - 1). Mobility (135)
# and HIP (139) have the same shape but carry no upper layer (RFC 6275 §6.1.1, RFC 7401 §5.1: next
# header 59), so they end the walk like ESP.
_IPV6_SKIP = frozenset({0, 43, 60, 140})
_IPV6_FRAG: Final = 44
_IP_AH: Final = 51  # authentication header, in IPv4 and IPv6 alike

_TCP = struct.Struct("!HHIIBB")  # sport dport seq ack offset flags (the window is read apart: a frame
# snapped inside the fixed header's last 6 bytes still decodes, with an unknown window)
_UDP = struct.Struct("!HHH")  # sport dport length
_U16 = struct.Struct("!H")
_U32_NATIVE_LE = struct.Struct("<I")
_U32_BE = struct.Struct("!I")
_IPV4_FRAG = struct.Struct("!HHH")  # total length, id, flags+offset (at ip+2)
# IPv4 header without options followed by the TCP header's first 14 bytes:
# vihl tos total id frag ttl proto csum src dst | sport dport seq ack offset flags window
_V4TCP = struct.Struct("!BxHxxHxBxx4s4sHHIIBBH")
_TCP_OPT_WSCALE: Final = 3  # RFC 7323 §2.2: kind 3, length 3, shift count
_MAX_WSCALE: Final = 14  # RFC 7323 §2.3: a larger shift is used as 14


def _wscale(data: memoryview, off: int, end: int) -> int:
    """The window scale shift in the TCP options between `off` and `end` (a SYN's), or -1 without one."""
    while off < end:
        kind = data[off]
        if kind == 0:  # end of option list
            break
        if kind == 1:  # no-operation (padding)
            off += 1
            continue
        if off + 1 >= end:
            break
        size = data[off + 1]
        if size < 2:
            break  # malformed: a length that does not move on
        if kind == _TCP_OPT_WSCALE and size == 3 and off + 2 < end:
            return min(data[off + 2], _MAX_WSCALE)
        off += size
    return -1


class Segment:
    """A transport-layer unit: one TCP segment or one UDP datagram."""

    __slots__ = (
        "ack",
        "dport",
        "dst",
        "flags",
        "key",
        "payload",
        "seq",
        "sport",
        "src",
        "transport",
        "ts_ns",
        "window",
        "wscale",
    )

    def __init__(
        self,
        ts_ns: int,
        transport: int,
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        payload: memoryview,
        key: bytes,
        window: int = -1,
        wscale: int = -1,
    ) -> None:
        self.ts_ns = ts_ns
        self.transport = transport  # PROTO_TCP or PROTO_UDP
        self.src = src  # packed address, 4 or 16 bytes
        self.dst = dst
        self.sport = sport
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.payload = payload
        self.key = key  # src + dst + sport + dport, packed: the direction's flow key
        self.window = window  # TCP: the advertised receive window as sent (unscaled); -1 unknown
        self.wscale = wscale  # TCP SYN: its window scale option's shift; -1 none (or not a SYN)

    def __repr__(self) -> str:
        return (
            f"Segment(ts={self.ts_ns}, proto={self.transport}, {self.src.hex()}:{self.sport} -> "
            f"{self.dst.hex()}:{self.dport}, seq={self.seq}, flags={self.flags:#x}, len={len(self.payload)})"
        )


class NetStats:
    """Per-reason counters of frames that did not become segments.

    Every frame is counted once: frames == segments + non_ip + other_transport + malformed + bad_linktype
    + filtered_ip_version + loopback_duplicates + (fragments - reassembled), since the fragment that
    completes a datagram becomes whatever the datagram is.
    """

    __slots__ = (
        "bad_linktype",
        "filtered_ip_version",
        "fragments",
        "frames",
        "loopback_duplicates",
        "malformed",
        "non_ip",
        "other_transport",
        "reassembled",
        "segments",
    )

    def __init__(self) -> None:
        self.frames = 0
        self.segments = 0
        self.non_ip = 0  # ARP, LLDP, ...
        self.other_transport = 0  # ICMP, SCTP, ESP, ...
        self.malformed = 0  # headers shorter than they claim
        self.bad_linktype = 0
        self.fragments = 0
        self.reassembled = 0
        self.filtered_ip_version = 0  # dropped by --ipv
        self.loopback_duplicates = 0


FastDecode = Callable[[int, int, memoryview, int], Segment | None]


def _accelerator() -> FastDecode | None:
    """The optional C accelerator's decode (net/_packet.c, built by the compiled build), or None: not built,
    or PACKETD_PURE=1. It decodes the common case (Ethernet/SLL/NULL/raw → IPv4/IPv6 without fragments or
    extension headers → TCP/UDP) into the same Segment as the code below, and returns None for any other
    frame, which this module then decodes (and counts) itself; tests/net/test_cext.py holds them equal."""
    if os.environ.get("PACKETD_PURE") == "1":
        return None
    try:
        from packetd.net import _packet
    except ImportError:
        return None
    _packet.init(Segment)
    return _packet.decode


FAST_DECODE = _accelerator()


class PacketDecoder:
    """Frames to segments, with counters for everything that is not a segment."""

    def __init__(self, ip_versions: frozenset[int] = frozenset({4, 6})) -> None:
        self.stats = NetStats()
        self._v4 = 4 in ip_versions
        self._v6 = 6 in ip_versions
        # _packet.decode's ipv argument: bit 0 IPv4, bit 1 IPv6
        self._ipv = int(4 in ip_versions) | int(6 in ip_versions) << 1
        self.reassembler = Reassembler()
        self.fast: FastDecode | None = FAST_DECODE  # None: every frame takes the pure path below

    def decode(self, ts_ns: int, linktype: int, data: memoryview) -> Segment | None:
        """The segment in `data`, or None (counted in `stats`)."""
        stats = self.stats
        stats.frames += 1
        fast = self.fast
        if fast is not None:
            seg = fast(ts_ns, linktype, data, self._ipv)
            if seg is not None:
                stats.segments += 1
                return seg
        n = len(data)
        try:
            if linktype == LINKTYPE_ETHERNET:
                ethertype = data[12] << 8 | data[13]
                off = 14
            elif linktype == LINKTYPE_LINUX_SLL:
                if (data[0] << 8 | data[1]) == _PACKET_OUTGOING and (
                    data[2] << 8 | data[3]
                ) == _ARPHRD_LOOPBACK:
                    stats.loopback_duplicates += 1
                    return None
                ethertype = data[14] << 8 | data[15]
                off = 16
            elif linktype == LINKTYPE_LINUX_SLL2:
                if data[10] == _PACKET_OUTGOING and (data[8] << 8 | data[9]) == _ARPHRD_LOOPBACK:
                    stats.loopback_duplicates += 1
                    return None
                ethertype = data[0] << 8 | data[1]
                off = 20
            elif linktype in _RAW_TYPES:
                off = 0
                v = data[0] >> 4
                ethertype = ETH_IPV4 if v == 4 else ETH_IPV6 if v == 6 else 0
            elif linktype == LINKTYPE_NULL or linktype == LINKTYPE_LOOP:
                if linktype == LINKTYPE_LOOP:
                    af = _U32_BE.unpack_from(data, 0)[0]
                else:
                    af = _U32_NATIVE_LE.unpack_from(data, 0)[0]
                    if af > 0xFFFF:  # written by a big-endian host
                        af = _U32_BE.unpack_from(data, 0)[0]
                off = 4
                ethertype = ETH_IPV4 if af == 2 else ETH_IPV6 if af in _AF_INET6 else 0
            else:
                stats.bad_linktype += 1
                return None
            # VLAN tags (only Ethernet and Linux cooked frames have them: the others' ethertype is IP or 0)
            while ethertype in _VLAN_TAGS:
                ethertype = data[off + 2] << 8 | data[off + 3]
                off += 4
            if ethertype == ETH_IPV4:
                if not self._v4:
                    stats.filtered_ip_version += 1
                    return None
                return self._ipv4(ts_ns, data, off, n)
            if ethertype == ETH_IPV6:
                if not self._v6:
                    stats.filtered_ip_version += 1
                    return None
                return self._ipv6(ts_ns, data, off, n)
            if ethertype in _ENCAPSULATIONS:
                return self._encapsulated(ts_ns, ethertype, data, off, n)
            stats.non_ip += 1
            return None
        except (IndexError, struct.error):
            stats.malformed += 1
            return None

    def _encapsulated(self, ts_ns: int, ethertype: int, data: memoryview, off: int, n: int) -> Segment | None:
        """IP inside a PPPoE session or under an MPLS label stack."""
        stats = self.stats
        if ethertype == ETH_PPPOE_SESSION:
            # ver/type(1) code(1) session(2) length(2) | PPP protocol(2)  (RFC 2516 §4, RFC 1661 §2)
            ppp = data[off + 6] << 8 | data[off + 7]
            off += 8
            ethertype = ETH_IPV4 if ppp == _PPP_IPV4 else ETH_IPV6 if ppp == _PPP_IPV6 else 0
        else:
            # label(20) tc(3) bottom-of-stack(1) ttl(8) per entry (RFC 3032 §2.1)
            while not data[off + 2] & 1:
                off += 4
            off += 4
            v = data[off] >> 4
            ethertype = ETH_IPV4 if v == 4 else ETH_IPV6 if v == 6 else 0
        if ethertype == ETH_IPV4:
            if not self._v4:
                stats.filtered_ip_version += 1
                return None
            return self._ipv4(ts_ns, data, off, n)
        if ethertype == ETH_IPV6:
            if not self._v6:
                stats.filtered_ip_version += 1
                return None
            return self._ipv6(ts_ns, data, off, n)
        stats.non_ip += 1
        return None

    def _ipv4(self, ts_ns: int, data: memoryview, ip: int, n: int) -> Segment | None:
        # Fast path: a 20-byte header, TCP, not a fragment — one unpack reads IP and TCP headers together,
        # and src, dst, sport, dport are contiguous, so the flow key is one slice.
        try:
            vihl, total, frag, proto, src, dst, sport, dport, seq, ack, doff, flags, window = (
                _V4TCP.unpack_from(data, ip)
            )
        except struct.error:
            vihl = -1
        if vihl == 0x45 and proto == PROTO_TCP and not frag & 0x3FFF:
            end = ip + total
            start = ip + 20 + ((doff >> 4) << 2)
            if start > end or end > n or doff < 0x50:
                return self._ipv4_general(ts_ns, data, ip, n)  # snapped, TSO, or malformed
            self.stats.segments += 1
            return Segment(
                ts_ns,
                PROTO_TCP,
                src,
                dst,
                sport,
                dport,
                seq,
                ack,
                flags,
                data[start:end],
                data[ip + 12 : ip + 24].tobytes(),
                window,
                _wscale(data, ip + 40, start) if flags & SYN else -1,
            )
        return self._ipv4_general(ts_ns, data, ip, n)

    def _ipv4_general(self, ts_ns: int, data: memoryview, ip: int, n: int) -> Segment | None:
        vihl = data[ip]
        ihl = (vihl & 0x0F) << 2
        total, ident, frag = _IPV4_FRAG.unpack_from(data, ip + 2)
        if total == 0:
            total = n - ip  # captured before segmentation offload: the packet is the rest of the frame
        wire = ip + total
        if vihl >> 4 != 4 or ihl < 20 or total < ihl:
            self.stats.malformed += 1
            return None
        end = min(wire, n)  # snapped (caplen < wire length): decode what was captured
        proto = data[ip + 9]
        if frag & 0x3FFF:  # MF set or non-zero offset
            if end < wire:
                self.stats.malformed += 1  # a snapped fragment can never complete its datagram
                return None
            self.stats.fragments += 1
            whole = self.reassembler.add_v4(
                ts_ns,
                data[ip + 12 : ip + 20].tobytes(),
                proto,
                ident,
                (frag & 0x1FFF) << 3,
                bool(frag & 0x2000),
                data[ip + ihl : end],
            )
            if whole is None:
                return None
            self.stats.reassembled += 1
            size = len(whole)
            return self._l4(
                ts_ns,
                proto,
                data[ip + 12 : ip + 16].tobytes(),
                data[ip + 16 : ip + 20].tobytes(),
                memoryview(whole),
                0,
                size,
                size,
            )
        l4 = ip + ihl
        if proto == _IP_AH:  # IPsec AH in transport mode (RFC 4302 §2): authenticates, hides nothing
            proto, l4 = data[l4], l4 + ((data[l4 + 1] + 2) << 2)
        if proto == PROTO_TCP:
            sport, dport, seq, ack, doff, flags = _TCP.unpack_from(data, l4)
            start = l4 + ((doff >> 4) << 2)
            if start > wire or doff < 0x50:
                self.stats.malformed += 1
                return None
            self.stats.segments += 1
            return Segment(
                ts_ns,
                PROTO_TCP,
                data[ip + 12 : ip + 16].tobytes(),
                data[ip + 16 : ip + 20].tobytes(),
                sport,
                dport,
                seq,
                ack,
                flags,
                data[start:end],
                data[ip + 12 : ip + 20].tobytes() + data[l4 : l4 + 4].tobytes(),
                _U16.unpack_from(data, l4 + 14)[0] if l4 + 16 <= n else -1,
                _wscale(data, l4 + 20, min(start, n)) if flags & SYN else -1,
            )
        return self._l4(
            ts_ns,
            proto,
            data[ip + 12 : ip + 16].tobytes(),
            data[ip + 16 : ip + 20].tobytes(),
            data,
            l4,
            end,
            wire,
        )

    def _ipv6(self, ts_ns: int, data: memoryview, ip: int, n: int) -> Segment | None:
        if data[ip] >> 4 != 6:
            self.stats.malformed += 1
            return None
        plen = _U16.unpack_from(data, ip + 4)[0]
        # payload length 0: a jumbogram or a capture taken before segmentation offload (see module doc)
        wire = ip + 40 + plen if plen else n
        src = data[ip + 8 : ip + 24].tobytes()
        dst = data[ip + 24 : ip + 40].tobytes()
        return self._ipv6_payload(ts_ns, data[ip + 6], src, dst, data, ip + 40, min(wire, n), wire, True)

    def _ipv6_payload(
        self,
        ts_ns: int,
        nxt: int,
        src: bytes,
        dst: bytes,
        data: memoryview,
        off: int,
        end: int,
        wire: int,
        first: bool,
    ) -> Segment | None:
        """Walk the extension headers from `off` (header type `nxt`) to the transport header."""
        while True:
            if nxt == PROTO_TCP or nxt == PROTO_UDP:
                return self._l4(ts_ns, nxt, src, dst, data, off, end, wire)
            if nxt in _IPV6_SKIP:
                nxt, off = data[off], off + ((data[off + 1] + 1) << 3)
            elif nxt == _IP_AH:
                nxt, off = data[off], off + ((data[off + 1] + 2) << 2)
            elif nxt == _IPV6_FRAG and first:
                if end < wire or off + 8 > end:
                    self.stats.malformed += 1  # a snapped fragment can never complete its datagram
                    return None
                fo = _U16.unpack_from(data, off + 2)[0]
                ident = _U32_BE.unpack_from(data, off + 4)[0]
                self.stats.fragments += 1
                got = self.reassembler.add_v6(
                    ts_ns, src + dst, ident, fo & 0xFFF8, bool(fo & 1), data[off + 8 : end], data[off]
                )
                if got is None:
                    return None
                self.stats.reassembled += 1
                nxt, whole = got
                size = len(whole)
                return self._ipv6_payload(ts_ns, nxt, src, dst, memoryview(whole), 0, size, size, False)
            else:
                self.stats.other_transport += 1  # ESP, ICMPv6, no next header, a nested fragment...
                return None
            if off > wire:
                self.stats.malformed += 1
                return None

    def _l4(
        self,
        ts_ns: int,
        proto: int,
        src: bytes,
        dst: bytes,
        data: memoryview,
        l4: int,
        end: int,
        wire: int,
    ) -> Segment | None:
        """The TCP segment or UDP datagram at `l4`; `end` is where the capture stops, `wire` where the IP
        packet does (they differ in snapped frames)."""
        if proto == PROTO_TCP:
            sport, dport, seq, ack, doff, flags = _TCP.unpack_from(data, l4)
            start = l4 + ((doff >> 4) << 2)
            if start > wire or doff < 0x50:
                self.stats.malformed += 1
                return None
            self.stats.segments += 1
            return Segment(
                ts_ns,
                PROTO_TCP,
                src,
                dst,
                sport,
                dport,
                seq,
                ack,
                flags,
                data[start:end],
                src + dst + data[l4 : l4 + 4].tobytes(),
                _U16.unpack_from(data, l4 + 14)[0] if l4 + 16 <= len(data) else -1,
                _wscale(data, l4 + 20, min(start, len(data))) if flags & SYN else -1,
            )
        if proto == PROTO_UDP:
            sport, dport, ulen = _UDP.unpack_from(data, l4)
            if ulen < 8 or l4 + 8 > wire:
                self.stats.malformed += 1
                return None
            stop = min(l4 + ulen, end)
            self.stats.segments += 1
            return Segment(
                ts_ns,
                PROTO_UDP,
                src,
                dst,
                sport,
                dport,
                0,
                0,
                0,
                data[l4 + 8 : stop],
                src + dst + data[l4 : l4 + 4].tobytes(),
            )
        self.stats.other_transport += 1
        return None
