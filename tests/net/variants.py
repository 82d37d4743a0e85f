"""Derive captures of other link types and formats from real frames, for tshark to read as the truth.

Each function takes Ethernet frames and returns frames of another encapsulation carrying the same packets.
Nothing here is trusted: a test writes the result to a file and compares packetd's reading of that file
with tshark's reading of the same file.
"""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Callable, Iterable

from packetd.capture.pcapwrite import PcapngWriter, PcapWriter
from tests.net.truth import EDITCAP, MERGECAP, RawFrame

TsFrame = tuple[int, bytes]

AF_INET = 2
AF_INET6 = (24, 28, 30)  # OpenBSD/NetBSD, FreeBSD, macOS: all mean IPv6 in NULL/LOOP headers
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
PACKET_HOST = 0
PACKET_OUTGOING = 4


def ethertype(frame: bytes) -> int:
    return int.from_bytes(frame[12:14], "big")


def ip_frames(frames: Iterable[TsFrame]) -> list[TsFrame]:
    """The Ethernet frames that carry IPv4 or IPv6 directly (no VLAN, PPPoE, ...)."""
    return [(ts, f) for ts, f in frames if len(f) >= 14 and ethertype(f) in (0x0800, 0x86DD)]


def to_raw(frames: Iterable[TsFrame]) -> list[TsFrame]:
    return [(ts, f[14:]) for ts, f in ip_frames(frames)]


def to_null(frames: Iterable[TsFrame], order: str, af6: tuple[int, ...] = AF_INET6) -> list[TsFrame]:
    """BSD loopback: the address family in the capturing host's byte order; IPv6 under each BSD's number."""
    out = []
    for i, (ts, f) in enumerate(ip_frames(frames)):
        af = AF_INET if ethertype(f) == 0x0800 else af6[i % len(af6)]
        out.append((ts, struct.pack(order + "I", af) + f[14:]))
    return out


def to_sll(frames: Iterable[TsFrame], duplicates: bool = False) -> list[TsFrame]:
    """Linux cooked v1. With `duplicates`, every packet appears twice on a loopback device, as on a
    socket bound to all interfaces: the outgoing copy first, then the incoming one; and once more as an
    outgoing packet of an Ethernet device (which is not a duplicate and must be kept)."""
    out = []
    for ts, f in frames:
        if len(f) < 14:
            continue

        def sll(pkttype: int, hatype: int, f: bytes = f) -> bytes:
            return struct.pack("!HHH8s", pkttype, hatype, 6, f[6:12] + b"\0\0") + f[12:]

        if duplicates:
            out.append((ts, sll(PACKET_OUTGOING, ARPHRD_LOOPBACK)))
            out.append((ts, sll(PACKET_HOST, ARPHRD_LOOPBACK)))
            out.append((ts, sll(PACKET_OUTGOING, ARPHRD_ETHER)))
        else:
            out.append((ts, sll(PACKET_HOST, ARPHRD_ETHER)))
    return out


def to_sll2(frames: Iterable[TsFrame], duplicates: bool = False) -> list[TsFrame]:
    """Linux cooked v2 (see `to_sll` for `duplicates`)."""
    out = []
    for ts, f in frames:
        if len(f) < 14:
            continue

        def sll2(pkttype: int, hatype: int, f: bytes = f) -> bytes:
            head = struct.pack("!2sHIHBB8s", f[12:14], 0, 1, hatype, pkttype, 6, f[6:12] + b"\0\0")
            return head + f[14:]

        if duplicates:
            out.append((ts, sll2(PACKET_OUTGOING, ARPHRD_LOOPBACK)))
            out.append((ts, sll2(PACKET_HOST, ARPHRD_LOOPBACK)))
            out.append((ts, sll2(PACKET_OUTGOING, ARPHRD_ETHER)))
        else:
            out.append((ts, sll2(PACKET_HOST, ARPHRD_ETHER)))
    return out


def with_vlans(frames: Iterable[TsFrame], tpids: tuple[int, ...]) -> list[TsFrame]:
    """Insert VLAN tags (outermost first) after the MAC addresses; VLAN ids vary per frame."""
    out = []
    for i, (ts, f) in enumerate(frames):
        if len(f) < 14:
            continue
        tags = b"".join(
            struct.pack("!HH", tpid, (i * 7 + k * 100 + 1) & 0x0FFF) for k, tpid in enumerate(tpids)
        )
        out.append((ts, f[:12] + tags + f[12:]))
    return out


def write_pcap(path: str, frames: Iterable[TsFrame], linktype: int, **kw: object) -> str:
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype=linktype, **kw)  # type: ignore[arg-type]
        for ts, frame in frames:
            w.write(ts, frame)
    return path


def write_pcapng_sections(
    path: str,
    groups: Iterable[tuple[int, list[TsFrame]]],
    layout: Callable[[int], dict[str, object]],
    block: Callable[[int], str] = lambda i: "epb",
) -> str:
    """One section per group of (linktype, frames); `layout(i)` gives section i's byte order ("order")
    and its interface's tsresol/tsoffset; `block(i)` the packet block type of section i."""
    with open(path, "wb") as f:
        w: PcapngWriter | None = None
        for i, (linktype, frames) in enumerate(groups):
            opts = dict(layout(i))
            order = str(opts.pop("order", "<"))
            if w is None:
                w = PcapngWriter(f, order)
            else:
                w.section(order)
            iface = w.add_interface(linktype, **opts)  # type: ignore[arg-type]
            kind = block(i)
            for ts, frame in frames:
                w.write(iface, ts, frame, block=kind)
    return path


def split_runs(frames: list[RawFrame], encap_to_linktype: dict[int, int]) -> list[tuple[int, list[TsFrame]]]:
    """Consecutive frames of one encapsulation, as (linktype, [(ts, bytes)]) groups."""
    groups: list[tuple[int, list[TsFrame]]] = []
    last = None
    for ts, encap, data in frames:
        assert ts is not None
        if encap != last:
            groups.append((encap_to_linktype[encap], []))
            last = encap
        groups[-1][1].append((ts, data))
    return groups


def editcap(src: str, dst: str, *args: str) -> str:
    assert EDITCAP is not None
    subprocess.run([EDITCAP, *args, src, dst], check=True, capture_output=True)
    return dst


def mergecap(dst: str, srcs: list[str], *args: str) -> str:
    assert MERGECAP is not None
    subprocess.run([MERGECAP, *args, "-w", dst, *srcs], check=True, capture_output=True)
    return dst


def tmpname(directory: str, name: str) -> str:
    return os.path.join(directory, name)
