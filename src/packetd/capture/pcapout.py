"""`watch -w FILE`: the packets of the connections whose records were shown, as pcapng for Wireshark.

Whether a connection's packets belong in the file is known only from its records: one that passes the
display filter (and, with `--write-only errors`, has an error; with `--write-only slow`, a roundtrip slower
than `--slower-than`). Until then its packets are held, copied, per connection; once it qualifies they are
written and the rest of it goes straight to the file; when it ends without qualifying they are dropped.

    frame ─ decode ─ flow table ──▶ flow id ──▶ held[flow] (bounded) ──▶ written once the flow qualifies
                         │
                      records ─ display filter ─ qualifies? ─▶ flow of (client, server)

Bounded: at most PER_CONNECTION_BYTES held for one connection and TOTAL_BYTES for all of them; a packet
beyond either is left out and counted (`left_out`, by reason), and when such a connection is written the
first packet after the hole carries a comment saying how many packets were left out and why. Packets of
different connections are written in the order they are decided, so timestamps are not monotonic across
connections (Wireshark sorts nothing and needs nothing sorted; `reordercap` sorts if wanted).

The file: one section whose comment names the rules and the filter, one interface block per link type met
(a frame names its link type, not its interface: AF_PACKET delivers every interface as raw IP), nanosecond
timestamps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from packetd import __version__
from packetd.capture.pcapwrite import PcapngWriter
from packetd.flow.table import Endpoint, Flow, FlowTable
from packetd.net.packet import Segment
from packetd.pairing.roundtrip import Roundtrip

PER_CONNECTION_BYTES = 4 << 20  # held for one undecided connection: a few hundred requests with bodies
TOTAL_BYTES = 256 << 20  # held for all undecided connections: the budget of the flow table itself
WRITE_ONLY = ("errors", "slow")
# written connections remembered after they end, by their tuple keys, so the last ACK after both FINs and
# late retransmissions (which the flow table swallows, no longer tracking the flow) still go with them
RECENT_CLOSED = 4096


class _Conn:
    __slots__ = ("held", "held_bytes", "keep", "left_out", "left_out_bytes", "reason")

    def __init__(self) -> None:
        self.held: list[tuple[int, int, bytes]] = []  # (ts_ns, linktype, frame)
        self.held_bytes = 0
        self.keep = False
        self.left_out = 0  # packets not held since the last one written
        self.left_out_bytes = 0
        self.reason = ""


def _ends(a: Endpoint, b: Endpoint) -> tuple[Endpoint, Endpoint]:
    return (a, b) if a <= b else (b, a)  # either role order: a decoder may swap client and server


class PcapOut:
    """Connection-level packet writer (see the module docstring)."""

    def __init__(
        self,
        out: BinaryIO,
        flows: FlowTable,
        qualifies: Callable[[Roundtrip], bool],
        comment: str,
        iface_name: str,
        per_connection: int = PER_CONNECTION_BYTES,
        total: int = TOTAL_BYTES,
    ) -> None:
        self._out = out
        self._writer = PcapngWriter(out, comment=comment, userappl=f"packetd {__version__}")
        self._flows = flows
        self._qualifies = qualifies
        self._iface_name = iface_name
        self._ifaces: dict[int, int] = {}  # link type → interface index
        self._conns: dict[int, _Conn] = {}  # flow id → state
        self._by_ends: dict[tuple[Endpoint, Endpoint], int] = {}  # (client, server) → flow id
        self._ended: list[Flow] = []  # removed during the current segment: settled after it
        self._recent: dict[bytes, _Conn] = {}  # tuple key of a written, ended connection → it (FIFO)
        self._per_connection = per_connection
        self._total = total
        self.held_bytes = 0
        self.written_packets = 0
        self.written_connections = 0
        self.dropped_connections = 0  # ended without qualifying
        self.left_out: dict[str, int] = {}  # reason → packets not written
        flows.on_remove = self._removed

    # -- the engine's side ---------------------------------------------------------------------------------
    def record(self, rt: Roundtrip) -> None:
        """A record as the engine emits it (before any display or holding)."""
        fid = self._by_ends.get(_ends(rt.client, rt.server))
        if fid is None:
            return
        conn = self._conns.get(fid)
        if conn is not None and not conn.keep and self._qualifies(rt):
            conn.keep = True
            self.written_connections += 1
            for ts, lt, frame in conn.held:
                self._write(conn, ts, lt, frame)
            self.held_bytes -= conn.held_bytes
            conn.held = []
            conn.held_bytes = 0

    def packet(self, seg: Segment, ts: int, linktype: int, data: memoryview) -> None:
        """A frame the flow table just took (call after `FlowTable.segment`)."""
        flow = self._flows.lookup(seg)
        if flow is None:
            flow = next((f for f in self._ended if seg.key in f.keys), None)
        if flow is None:
            late = self._recent.get(seg.key)
            if late is not None:
                self._write(late, ts, linktype, data)
        else:
            conn = self._conns.get(flow.id)
            if conn is None:
                conn = self._conns[flow.id] = _Conn()
                self._by_ends[_ends(flow.client, flow.server)] = flow.id
            if conn.keep:
                self._write(conn, ts, linktype, data)
            else:
                self._hold(conn, ts, linktype, data)
        if self._ended:
            self._settle()

    def finish(self) -> None:
        """After the engine's finish: every flow has ended; what did not qualify is dropped."""
        self._settle()
        for conn in self._conns.values():
            if not conn.keep:
                self.dropped_connections += 1
                self.held_bytes -= conn.held_bytes
        self._conns.clear()
        self._by_ends.clear()
        self._out.flush()

    def close(self) -> None:
        self._out.close()

    # -- inside --------------------------------------------------------------------------------------------
    def _removed(self, flow: Flow, reason: str) -> None:
        # records of this flow may still come (its handler closes after this call): settle after the segment
        self._ended.append(flow)

    def _settle(self) -> None:
        for flow in self._ended:
            conn = self._conns.pop(flow.id, None)
            self._by_ends.pop(_ends(flow.client, flow.server), None)
            if conn is not None and not conn.keep:
                self.dropped_connections += 1
                self.held_bytes -= conn.held_bytes
            elif conn is not None:
                recent = self._recent
                for key in flow.keys:
                    recent.pop(key, None)
                    if len(recent) >= RECENT_CLOSED:
                        del recent[next(iter(recent))]
                    recent[key] = conn
        self._ended.clear()

    def _hold(self, conn: _Conn, ts: int, linktype: int, data: memoryview) -> None:
        n = len(data)
        if conn.held_bytes + n > self._per_connection:
            reason = f"over the {self._per_connection >> 20} MiB held per connection until it qualifies"
        elif self.held_bytes + n > self._total:
            reason = f"over the {self._total >> 20} MiB held for all connections until they qualify"
        else:
            conn.held.append((ts, linktype, bytes(data)))  # a copy: the frame's buffer is reused
            conn.held_bytes += n
            self.held_bytes += n
            return
        key = "per_connection" if reason.endswith("per connection until it qualifies") else "total"
        self.left_out[key] = self.left_out.get(key, 0) + 1
        conn.left_out += 1
        conn.left_out_bytes += n
        conn.reason = reason

    def _write(self, conn: _Conn, ts: int, linktype: int, frame: bytes | memoryview) -> None:
        iface = self._ifaces.get(linktype)
        if iface is None:
            iface = self._ifaces[linktype] = self._writer.add_interface(
                linktype, tsresol=9, name=self._iface_name
            )
        comment = None
        if conn.left_out:
            comment = (
                f"packetd: {conn.left_out} packets ({conn.left_out_bytes} bytes) of this connection before "
                f"this one were not written: {conn.reason}"
            )
            conn.left_out = conn.left_out_bytes = 0
        self._writer.write(iface, ts, frame, comment=comment)
        self.written_packets += 1
