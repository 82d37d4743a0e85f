"""Replicate a small real capture into a large one whose connections stay distinct and whose TCP stays
consistent: the input of the offline benchmarks against tshark (bench/vs_tshark.py).

    .venv/bin/python bench/replicate.py IN.pcap OUT.pcap --server-port P [--copies N | --packets N]
                                         [--max-mb 400] [--overlap 16]

Copy k of the input gets its own addresses (client 10.128.0.0 + k + 1, server 10.0.0.(k mod 4 + 1)), its
own TCP sequence space (seq and ack shifted by a per-copy, per-direction offset, so no two copies share an
initial sequence number) and a start time k × (input span / `overlap`) after the first, so about `overlap`
copies are in flight at any moment; the copies are merged in time order into one pcap (nanosecond
timestamps). Ports stay as recorded, so `--proto NAME;PORT` and tshark's `-d tcp.port==PORT,…` see every
copy. The IPv4 header checksum is recomputed; the TCP/UDP checksum is adjusted incrementally (RFC 1624),
so it stays exactly as right or wrong as tcpdump recorded it (loopback captures carry partial checksums).

The side whose source port is `--server-port` is the server; packets of other ports are left out. Only Ethernet + IPv4 frames are rewritten
(what tcpdump records on Linux loopback); anything else is refused with a clear error, not copied blindly.
"""

from __future__ import annotations

import argparse
import heapq
import math
import os
import struct
import sys
from collections.abc import Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from packetd.capture.pcapfile import CaptureFile  # noqa: E402
from packetd.capture.pcapwrite import PcapWriter  # noqa: E402

ETHERTYPE_IPV4 = 0x0800
LINKTYPE_ETHERNET = 1
TCP, UDP = 6, 17
ACK_FLAG = 0x10
CLIENT_BASE = (10 << 24) | (128 << 16)  # 10.128.0.0: copy k's client is this + k + 1
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class ReplicateError(Exception):
    """The input cannot be replicated (link type, network layer); the message says which packet and why."""


# One input packet, pre-parsed once: (ts_ns, frame, from_server, l4_offset, l4_proto)
Parsed = tuple[int, bytes, bool, int, int]


def parse(path: str, server_port: int) -> list[Parsed]:
    out: list[Parsed] = []
    cf = CaptureFile(path)
    try:
        for i, (ts, linktype, data) in enumerate(cf):
            frame = bytes(data)
            if (
                linktype != LINKTYPE_ETHERNET
                or len(frame) < 34
                or _U16.unpack_from(frame, 12)[0] != ETHERTYPE_IPV4
            ):
                raise ReplicateError(f"{path}: packet {i + 1} is not Ethernet + IPv4 (link type {linktype})")
            ihl = (frame[14] & 0x0F) * 4
            proto = frame[23]
            l4 = 14 + ihl
            if proto not in (TCP, UDP) or len(frame) < l4 + 8:
                raise ReplicateError(f"{path}: packet {i + 1} is neither TCP nor UDP (IP protocol {proto})")
            sport, dport = _U16.unpack_from(frame, l4)[0], _U16.unpack_from(frame, l4 + 2)[0]
            if server_port not in (sport, dport):
                continue  # another conversation in the file: without its server's port, it has no sides
            out.append((ts, frame, sport == server_port, l4, proto))
    finally:
        cf.close()
    if not out:
        raise ReplicateError(f"{path}: no packets to or from port {server_port}")
    return out


def _sum16(data: bytes | bytearray, start: int, end: int) -> int:
    s = 0
    for off in range(start, end, 2):
        s += (data[off] << 8) | data[off + 1]
    return s


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _words(value: int, n: int) -> int:
    """The ones'-complement sum of the 16-bit words of an n-byte big-endian integer."""
    s = 0
    for _ in range(n // 2):
        s += value & 0xFFFF
        value >>= 16
    return s


def rewrite(p: Parsed, k: int) -> bytearray:
    """Copy k of one parsed packet: new addresses, shifted sequence numbers, checksums kept consistent."""
    _ts, frame, from_server, l4, proto = p
    buf = bytearray(frame)
    client = CLIENT_BASE + k + 1
    server = (10 << 24) | (k % 4 + 1)
    src, dst = (server, client) if from_server else (client, server)
    old_src, old_dst = _U32.unpack_from(buf, 26)[0], _U32.unpack_from(buf, 30)[0]
    _U32.pack_into(buf, 26, src)
    _U32.pack_into(buf, 30, dst)
    # the IPv4 header checksum, whole (20-60 bytes: cheap)
    _U16.pack_into(buf, 24, 0)
    _U16.pack_into(buf, 24, ~_fold(_sum16(buf, 14, l4)) & 0xFFFF)
    # the L4 checksum covers the pseudo-header's addresses (and TCP's seq/ack): adjust it by the difference
    old_words = _words(old_src, 4) + _words(old_dst, 4)
    new_words = _words(src, 4) + _words(dst, 4)
    if proto == TCP:
        c_off = (k * 0x9E3779B1) & 0xFFFFFFFF  # per-copy offsets of each direction's sequence space
        s_off = (k * 0x85EBCA77) & 0xFFFFFFFF
        seq_off, ack_off = (s_off, c_off) if from_server else (c_off, s_off)
        seq, ack = _U32.unpack_from(buf, l4 + 4)[0], _U32.unpack_from(buf, l4 + 8)[0]
        new_seq = (seq + seq_off) & 0xFFFFFFFF
        new_ack = (ack + ack_off) & 0xFFFFFFFF if buf[l4 + 13] & ACK_FLAG else ack
        _U32.pack_into(buf, l4 + 4, new_seq)
        _U32.pack_into(buf, l4 + 8, new_ack)
        old_words += _words(seq, 4) + _words(ack, 4)
        new_words += _words(new_seq, 4) + _words(new_ack, 4)
        csum_at = l4 + 16
    else:
        csum_at = l4 + 6
    if len(buf) >= csum_at + 2:
        old = _U16.unpack_from(buf, csum_at)[0]
        if not (proto == UDP and old == 0):  # a UDP checksum of 0 means "none": keep it so
            # RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), summed over every changed word
            s = (~old & 0xFFFF) + 0xFFFF * 8 * 2 - old_words + new_words  # + 0xFFFF*n keeps it positive
            _U16.pack_into(buf, csum_at, ~_fold(s) & 0xFFFF)
    return buf


def copies_for(packets_in: int, bytes_in: int, packets: int, max_mb: float, min_mb: float) -> int:
    """How many copies make at least `packets` packets and `min_mb` MB, but no more than `max_mb` MB."""
    want = max(math.ceil(packets / packets_in), math.ceil(min_mb * 1e6 / bytes_in))
    cap = max(1, int(max_mb * 1e6 // bytes_in))
    return max(1, min(want, cap))


def _copy(parsed: list[Parsed], k: int, shift: int) -> Iterator[tuple[int, int, int]]:
    for i, p in enumerate(parsed):
        yield p[0] + k * shift, k, i


def replicate(src: str, dst: str, server_port: int, copies: int, overlap: int = 16) -> tuple[int, int]:
    """Write `copies` copies of `src` into `dst`: (packets written, bytes of the file)."""
    parsed = parse(src, server_port)
    span = max(parsed[-1][0] - parsed[0][0], 1)
    shift = max(span // max(overlap, 1), 1)
    n = 0
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        w = PcapWriter(f)
        for ts, k, i in heapq.merge(*(_copy(parsed, k, shift) for k in range(copies))):
            w.write(ts, rewrite(parsed[i], k))
            n += 1
    os.replace(tmp, dst)
    return n, os.path.getsize(dst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--server-port", type=int, required=True)
    ap.add_argument("--copies", type=int, default=None, help="exactly this many copies")
    ap.add_argument(
        "--packets", type=int, default=300_000, help="at least this many packets (default 300000)"
    )
    ap.add_argument("--min-mb", type=float, default=20.0)
    ap.add_argument("--max-mb", type=float, default=400.0)
    ap.add_argument("--overlap", type=int, default=16, help="copies in flight at once")
    args = ap.parse_args()
    try:
        copies = args.copies
        if copies is None:
            count = sum(1 for _ in parse(args.src, args.server_port))
            copies = copies_for(count, os.path.getsize(args.src), args.packets, args.max_mb, args.min_mb)
        n, size = replicate(args.src, args.dst, args.server_port, copies, args.overlap)
    except (ReplicateError, OSError) as e:
        sys.exit(f"replicate: {e}")
    print(f"{args.dst}: {copies} copies, {n} packets, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
