"""Rewrite TCP/UDP ports in a capture: the same traffic on ports no default rule names.

`python -m tests.helpers.portmap IN OUT 6379=16379 [53=15353 ...]` (or `rewrite(path, out, {old: new})`)
reads any capture packetd reads (pcap, pcapng, every link type it decodes) and writes a pcapng (one
interface per link type, nanosecond times) where every source or destination port in the map is replaced.
Checksums are left as they were: packetd ignores them (net/packet.py verifies none), so the rewritten
capture decodes exactly as the original would have on the new ports. IPv4 fragments after the first carry
no ports and are copied as they are; IPv6 extension headers (hop-by-hop, routing, fragment, destination
options) are walked to the transport header.
"""

from __future__ import annotations

import sys

from packetd.capture.pcapfile import CaptureFile
from packetd.capture.pcapwrite import PcapngWriter
from packetd.net import packet as p

_VLAN = (0x8100, 0x88A8, 0x9100)
_IPV6_EXT = (0, 43, 60)


def _ip_offset(linktype: int, frame: bytes) -> int:
    """Where the IP header starts, or -1 (not IP)."""
    if linktype == p.LINKTYPE_ETHERNET:
        ethertype, off = frame[12] << 8 | frame[13], 14
    elif linktype == p.LINKTYPE_LINUX_SLL:
        ethertype, off = frame[14] << 8 | frame[15], 16
    elif linktype == p.LINKTYPE_LINUX_SLL2:
        ethertype, off = frame[0] << 8 | frame[1], 20
    elif linktype in (p.LINKTYPE_NULL, p.LINKTYPE_LOOP):
        return 4
    elif linktype in (
        p.LINKTYPE_RAW,
        p.LINKTYPE_RAW_DLT12,
        p.LINKTYPE_RAW_DLT14,
        p.LINKTYPE_IPV4,
        p.LINKTYPE_IPV6,
    ):
        return 0
    else:
        return -1
    while ethertype in _VLAN:
        ethertype, off = frame[off + 2] << 8 | frame[off + 3], off + 4
    return off if ethertype in (0x0800, 0x86DD) else -1


def _l4_offset(frame: bytes, off: int) -> int:
    """Where the TCP/UDP header starts, or -1 (other transport, or a non-first fragment)."""
    version = frame[off] >> 4
    if version == 4:
        if (frame[off + 6] << 8 | frame[off + 7]) & 0x1FFF:
            return -1  # a later fragment: no ports in it
        proto, l4 = frame[off + 9], off + (frame[off] & 0x0F) * 4
    elif version == 6:
        proto, l4 = frame[off + 6], off + 40
        while proto in _IPV6_EXT or proto == 44:
            if proto == 44:
                if (frame[l4 + 2] << 8 | frame[l4 + 3]) & 0xFFF8:
                    return -1
                proto, l4 = frame[l4], l4 + 8
            else:
                proto, l4 = frame[l4], l4 + (frame[l4 + 1] + 1) * 8
    else:
        return -1
    return l4 if proto in (6, 17) and l4 + 4 <= len(frame) else -1


def rewrite_frame(linktype: int, frame: bytes, ports: dict[int, int]) -> bytes:
    """The frame with its TCP/UDP ports mapped through `ports`."""
    off = _ip_offset(linktype, frame)
    if off < 0 or off >= len(frame):
        return frame
    l4 = _l4_offset(frame, off)
    if l4 < 0:
        return frame
    out = bytearray(frame)
    for at in (l4, l4 + 2):
        port = out[at] << 8 | out[at + 1]
        new = ports.get(port)
        if new is not None:
            out[at : at + 2] = new.to_bytes(2, "big")
    return bytes(out)


def rewrite(src: str, dst: str, ports: dict[int, int]) -> int:
    """Write `src` with `ports` mapped to `dst` (pcapng); returns the number of frames."""
    capture = CaptureFile(src)
    n = 0
    try:
        with open(dst, "wb") as out:
            writer = PcapngWriter(out)  # (its section header is written here)
            ifaces: dict[int, int] = {}
            for ts, linktype, data in capture:
                iface = ifaces.get(linktype)
                if iface is None:
                    iface = ifaces[linktype] = writer.add_interface(linktype, tsresol=9)
                writer.write(iface, ts, rewrite_frame(linktype, bytes(data), ports))
                n += 1
    finally:
        capture.close()
    return n


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: portmap.py IN OUT OLD=NEW ...", file=sys.stderr)
        return 2
    ports = {int(a): int(b) for a, b in (arg.split("=") for arg in argv[2:])}
    rewrite(argv[0], argv[1], ports)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
