"""Which server ports the packets went to, while no connection was found on a watched port.

`watch` started with the wrong `--proto` (or none, on a host whose servers are not on the default ports)
sees packets and no connection. To say what to type instead, the engine hands every TCP/UDP segment to
this tally until the first connection on a watched port is created; then the tally stops (one attribute
read per packet from there on) and its counts only serve the summary's packet time.

The server end of a segment: a SYN's destination and a SYN-ACK's source are certain, and remembered
(`listening`), so the rest of that connection's packets count for the same port; otherwise the lower port
(servers listen low, clients take ephemeral ports from 32768 up on Linux and 49152 up per RFC 6335 §6). Pure: time is the packets' own (`first_ns`, `last_ns`).
"""

from __future__ import annotations

from typing import Final

from packetd.net.packet import ACK, PROTO_TCP, SYN, Segment

# distinct (transport, port) pairs counted; a port scan beyond that is counted in `overflow`
MAX_PORTS: Final = 4096


class PortTally:
    """Packets per (transport, server port); see the module docstring."""

    __slots__ = ("active", "counts", "first_ns", "last_ns", "listening", "overflow", "packets")

    def __init__(self) -> None:
        self.active = True  # the engine stops feeding it once a connection on a watched port exists
        self.counts: dict[tuple[str, int], int] = {}
        self.first_ns = -1
        self.last_ns = -1
        self.overflow = 0  # segments to ports beyond MAX_PORTS
        self.packets = 0
        self.listening: set[int] = set()  # TCP ports a SYN went to; bounded by MAX_PORTS

    def add(self, seg: Segment) -> None:
        if self.first_ns < 0:
            self.first_ns = seg.ts_ns
        self.last_ns = max(self.last_ns, seg.ts_ns)
        self.packets += 1
        key = ("tcp" if seg.transport == PROTO_TCP else "udp", self.server_port(seg))
        n = self.counts.get(key)
        if n is not None:
            self.counts[key] = n + 1
        elif len(self.counts) < MAX_PORTS:
            self.counts[key] = 1
        else:
            self.overflow += 1

    def busiest(self, n: int) -> list[tuple[str, int, int]]:
        """The `n` busiest (transport, port, packets), most packets first (then by port)."""
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0][1], kv[0][0]))
        return [(t, p, c) for (t, p), c in ranked[:n]]

    def server_port(self, seg: Segment) -> int:
        """The segment's server end (see the module docstring)."""
        if seg.transport == PROTO_TCP:
            if seg.flags & SYN:
                port = seg.sport if seg.flags & ACK else seg.dport
                if len(self.listening) < MAX_PORTS:
                    self.listening.add(port)
                return port
            if seg.dport in self.listening:
                return seg.dport
            if seg.sport in self.listening:
                return seg.sport
        return min(seg.sport, seg.dport)
