"""Writing pcap and pcapng files, and building TCP/UDP packets for them.

Used by the benchmark (to generate large captures) and the tests (to derive lossy or reordered captures
from real ones, to write every variant of the file formats, and to build precise edge cases). Packets are built with correct lengths; IP and TCP
checksums are left zero (capture tools and packetd do not verify them, as with checksum offload).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from packetd.net.packet import ACK, FIN, PSH, SYN


class PcapWriter:
    """Classic pcap: nanosecond or microsecond timestamps, little- or big-endian (`byteorder` "<" or ">")."""

    def __init__(
        self,
        out: BinaryIO,
        linktype: int = 1,
        snaplen: int = 262144,
        nanosecond: bool = True,
        byteorder: str = "<",
    ) -> None:
        self._out = out
        self._ns = nanosecond
        self._rec = struct.Struct(byteorder + "IIII")
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        out.write(struct.pack(byteorder + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, ts_ns: int, frame: bytes | memoryview, orig_len: int | None = None) -> None:
        sec, frac = divmod(ts_ns, 1_000_000_000)
        if not self._ns:
            frac //= 1000
        n = len(frame)
        self._out.write(self._rec.pack(sec, frac, n, orig_len if orig_len is not None else n))
        self._out.write(frame)


def _pad4(data: bytes | memoryview) -> bytes:
    return bytes(data) + b"\0" * (-len(data) % 4)


class PcapngWriter:
    """pcapng: sections, interfaces with their own link type, resolution and offset, and EPB/SPB/OPB.

    `add_interface(tsresol=...)` takes the raw if_tsresol byte (6 = microseconds, 9 = nanoseconds,
    0x80 | n = 2^-n seconds); timestamps given to `write` are in nanoseconds and converted to the
    interface's units (rounded down), or given exactly as `ts_units`. Used by the tests to produce every
    variant of the format from real captures, and read back with tshark as the truth.
    """

    def __init__(
        self, out: BinaryIO, byteorder: str = "<", comment: str | None = None, userappl: str = "packetd tests"
    ) -> None:
        self._out = out
        self._order = byteorder
        self._ifaces: list[tuple[int, int, int]] = []  # (snaplen, tsresol, tsoffset)
        self.section(comment=comment, userappl=userappl)

    def _block(self, btype: int, body: bytes) -> None:
        body = _pad4(body)
        n = 12 + len(body)
        o = self._order
        self._out.write(struct.pack(o + "II", btype, n) + body + struct.pack(o + "I", n))

    def _option(self, code: int, value: bytes) -> bytes:
        return struct.pack(self._order + "HH", code, len(value)) + _pad4(value)

    def section(
        self, byteorder: str | None = None, comment: str | None = None, userappl: str = "packetd tests"
    ) -> None:
        """Start a new section (SHB), with an opt_comment when given; interfaces must be declared again."""
        if byteorder is not None:
            self._order = byteorder
        self._ifaces = []
        o = self._order
        opts = self._option(1, comment.encode()) if comment else b""
        opts += self._option(4, userappl.encode()) + self._option(0, b"")  # shb_userappl, end of options
        self._block(0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)

    def add_interface(
        self, linktype: int, snaplen: int = 0, tsresol: int = 6, tsoffset: int = 0, name: str = ""
    ) -> int:
        o = self._order
        opts = b""
        if name:
            opts += self._option(2, name.encode())
        if tsresol != 6:
            opts += self._option(9, bytes([tsresol]))
        if tsoffset:
            opts += self._option(14, struct.pack(o + "q", tsoffset))
        if opts:
            opts += self._option(0, b"")
        self._block(1, struct.pack(o + "HHI", linktype, 0, snaplen) + opts)
        self._ifaces.append((snaplen, tsresol, tsoffset))
        return len(self._ifaces) - 1

    def units(self, iface: int, ts_ns: int) -> int:
        """`ts_ns` in the interface's timestamp units (after removing its if_tsoffset), rounded down."""
        _, tsresol, tsoffset = self._ifaces[iface]
        t = ts_ns - tsoffset * 1_000_000_000
        if tsresol & 0x80:
            return (t << (tsresol & 0x7F)) // 1_000_000_000
        if tsresol <= 9:
            return t // int(10 ** (9 - tsresol))
        return t * int(10 ** (tsresol - 9))

    def write(
        self,
        iface: int,
        ts_ns: int,
        frame: bytes | memoryview,
        orig_len: int | None = None,
        block: str = "epb",
        ts_units: int | None = None,
        comment: str | None = None,
    ) -> None:
        """One packet as an enhanced ("epb"), obsolete ("opb") or simple ("spb", interface 0) block; an
        EPB may carry an opt_comment (Wireshark shows it as the packet's comment)."""
        o = self._order
        n = len(frame)
        orig = orig_len if orig_len is not None else n
        if block == "spb":
            self._block(3, struct.pack(o + "I", orig) + _pad4(frame))
            return
        t = self.units(iface, ts_ns) if ts_units is None else ts_units
        hi, lo = t >> 32, t & 0xFFFFFFFF
        if block == "epb":
            opts = self._option(1, comment.encode()) + self._option(0, b"") if comment else b""
            self._block(6, struct.pack(o + "IIIII", iface, hi, lo, n, orig) + _pad4(frame) + opts)
        else:
            self._block(2, struct.pack(o + "HHIIII", iface, 0, hi, lo, n, orig) + _pad4(frame))


def write_pcap(path: str, frames: Iterable[tuple[int, bytes | memoryview]], linktype: int = 1) -> int:
    n = 0
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype)
        for ts, frame in frames:
            w.write(ts, frame)
            n += 1
    return n


def ipv4_tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    ident: int = 0,
) -> bytes:
    """An IPv4/TCP packet (no link layer)."""
    tcp = struct.pack(
        "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0
    )
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        ident & 0xFFFF,
        0x4000,
        64,
        6,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return ip + tcp + payload


def ipv6_tcp(
    src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b""
) -> bytes:
    tcp = struct.pack(
        "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0
    )
    ip = struct.pack(
        "!IHBB16s16s",
        6 << 28,
        len(tcp) + len(payload),
        6,
        64,
        socket.inet_pton(socket.AF_INET6, src),
        socket.inet_pton(socket.AF_INET6, dst),
    )
    return ip + tcp + payload


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes, ident: int = 0) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    total = 20 + 8 + len(payload)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        ident & 0xFFFF,
        0,
        64,
        17,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return ip + udp + payload


def ethernet(packet: bytes, ethertype: int | None = None, vlans: Iterable[int] = ()) -> bytes:
    """Wrap an IP packet in an Ethernet header (optionally 802.1Q-tagged)."""
    if ethertype is None:
        ethertype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    head = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
    for vid in vlans:
        head += struct.pack("!HH", 0x8100, vid & 0x0FFF)
    return head + struct.pack("!H", ethertype) + packet


class TcpConversation:
    """Builds the packets of one TCP connection with consistent sequence and acknowledgement numbers.

    Each side's data is cut into segments of at most `mss` bytes; each data segment acknowledges what the
    other side sent so far (as a real stack does with delayed ACKs piggybacked on data).
    """

    def __init__(
        self,
        client: tuple[str, int],
        server: tuple[str, int],
        isn_client: int = 1000,
        isn_server: int = 5000,
        mss: int = 1448,
        v6: bool = False,
    ) -> None:
        self.client = client
        self.server = server
        self.mss = mss
        self.seq = [isn_client, isn_server]
        self._v6 = v6
        self._ident = [1, 1]

    def _packet(self, side: int, flags: int, payload: bytes = b"") -> bytes:
        src, dst = (self.client, self.server) if side == 0 else (self.server, self.client)
        seq, ack = self.seq[side], self.seq[side ^ 1]
        if self._v6:
            return ipv6_tcp(src[0], dst[0], src[1], dst[1], seq, ack, flags, payload)
        self._ident[side] += 1
        return ipv4_tcp(src[0], dst[0], src[1], dst[1], seq, ack, flags, payload, self._ident[side])

    def handshake(self) -> Iterator[bytes]:
        c = self._packet(0, SYN)
        self.seq[0] += 1
        yield c
        s = self._packet(1, SYN | ACK)
        self.seq[1] += 1
        yield s
        yield self._packet(0, ACK)

    def send(self, side: int, data: bytes, segment_sizes: Iterable[int] | None = None) -> Iterator[bytes]:
        """Data segments from `side` (0 client, 1 server)."""
        sizes = list(segment_sizes) if segment_sizes is not None else None
        pos = 0
        i = 0
        while pos < len(data):
            n = sizes[i] if sizes is not None and i < len(sizes) else self.mss
            chunk = data[pos : pos + n]
            pkt = self._packet(side, ACK | PSH, chunk)
            self.seq[side] += len(chunk)
            pos += len(chunk)
            i += 1
            yield pkt

    def ack(self, side: int) -> bytes:
        return self._packet(side, ACK)

    def close(self) -> Iterator[bytes]:
        yield self._packet(0, FIN | ACK)
        self.seq[0] += 1
        yield self._packet(1, FIN | ACK)
        self.seq[1] += 1
        yield self._packet(0, ACK)
