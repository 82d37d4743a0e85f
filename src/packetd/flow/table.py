"""The flow table and TCP stream tracking: segments in, ordered bytes, gaps and EOFs out.

Hand-written because no library reassembles TCP passively, from both directions, with bounded memory and
explicit gaps; this is the layer the Go implementation lacked (reference §4.4, §18.4).

A flow is one connection: both directions, each a `TcpStream`, direction 0 being the client's. The table
maps each direction's packed 4-tuple to (flow, direction), so a packet costs one dict lookup.

A connection that so far is a bare SYN (no answer yet: most connects for a moment, and every one of a SYN
flood or a port scan) is not a flow yet but a small tuple (`HalfOpen`: its id, times, the SYN's sequence
number, window and scale, protocol, packets), made and evicted several times faster than a Flow with its
streams and handler; its next segment (the SYN-ACK, an RST, data) makes the flow exactly as the SYN would
have, and goes on into it. Until then it is counted, bounded, expired, evicted and reloaded as a flow, and
shown as the Flow it stands for (`flows()`, `on_remove`); only its handler is not made yet (a Session does
nothing before the first byte anyway).

Client and server: the SYN sender is the client (a SYN-ACK sender the server); without a SYN, the side
whose port matches a rule is the server (both match: the lower port). Decoders may correct this from
content (`SwapRoles`); the flow layer does not care.

TCP, per direction (all sequence arithmetic modulo 2**32, so wrap-around is exact):

    seq == next_seq        deliver; then deliver any buffered segments that became contiguous
    seq ahead of next_seq  buffer (out of order), bounded by MAX_OOO_BYTES / MAX_OOO_SEGMENTS
    seq behind next_seq    retransmission or duplicate: drop it, or trim the overlap and deliver the rest

next_seq starts after the SYN; a direction joined mid-stream starts at its first segment, or at the peer's
last ACK when that is a little behind it (the receiver still waits for the bytes between, and the capture
may show them next).

A hole is a run of missing bytes that we know was sent: before buffered data, before a FIN, or below what
the peer acknowledged ("tail loss": nothing after it was captured). It is declared a gap, passed on as
`gap(nbytes)` with its exact size, and skipped when: the buffer overflows; the receiver acknowledged the
hole (it has the bytes, so no retransmission will ever show them to us: the capture lost them) and then
either sends data of its own (which may answer them: no decoder may see an answer before the gap in what
it answers) or sees the sender's next segment land beyond it (a bare ACK alone is not enough: a capture
point may show an ACK before the data it acknowledges); the hole is older than HOLE_TIMEOUT_NS of packet
time; or the connection ends. Data delivered after a hole was declared lost keeps its capture time (the
receiver had it then); data behind a hole filled by a retransmission is delivered when the retransmission
arrives (it was readable no earlier).

A FIN ends a direction once every byte before it was delivered or declared lost; nothing of that direction
is delivered after it (later data is a counted duplicate), and the ACK of the FIN (which acknowledges the
FIN's own sequence number) is not a hole. An RST ends both directions at once, if its sequence number
lies in the receiver's window (RFC 5961 §3.2, `_rst_acceptable`); any other RST is counted and ignored, as
the receiver ignores it.

A SYN on a known tuple starts a new connection unless it repeats the SYN already seen there; a SYN without
ACK on a connection joined mid-stream always does (the roles guessed from the ports may have been wrong, or
the old connection ended unseen). Idle flows expire after `idle_timeout_ns` of packet time; the table is
bounded (`max_flows`, from a memory budget: `flows_for_memory`), evicting when full the oldest half-open
connection, else a flow that never carried payload if one is among the oldest, else the least recently
active of them.

Connections closed by FIN or RST are remembered for CLOSED_LINGER_NS so that a late retransmission does not
start a new, bogus "mid-stream" connection; a SYN always starts a new one. Expired and evicted flows are
not remembered: they were alive, and their next segment rightly joins them again mid-stream.

A connection no rule claims is dropped at its first segment (counted `unmatched`), unless detection by
content is on (`detection`, flow/detect.py): then its flow is created with a `Detecting` handler that shows
its first bytes to the detectors and hands it to the winner, or marks it UNDETECTED — from then on each of
its packets costs one lookup and one identity test (`_tcp_segment`), until its FIN or RST ends it.
"""

from __future__ import annotations

import heapq
import socket
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final, Protocol

from packetd._values import value
from packetd.flow.detect import DETECT, UNDETECTED, Detecting, Detection
from packetd.net.packet import ACK, FIN, PROTO_TCP, RST, SYN, Segment

# Final (here and in net.packet): literals inlined by the compiled build, not a globals lookup at each use
MASK: Final = 0xFFFFFFFF
HALF: Final = 0x80000000
MAX_OOO_BYTES: Final = 256 * 1024  # per direction: four times a default Linux initial receive window
# The segment count is bounded too, for the bookkeeping each buffered segment costs beyond its payload
# (~160 bytes: its bytes object, the (payload, time) tuple, dict slot and heap entry; tests/flow measures it).
# Sized from the byte budget so that segments of 64 bytes or more reach the byte bound first, and a stream
# of one-byte segments still reorders over 4096 of them (16 times the old 256-segment cap); at worst ~0.65 MiB
# of bookkeeping per direction, only while a hole is open.
OOO_MIN_SEGMENT: Final = 64
MAX_OOO_SEGMENTS: Final = MAX_OOO_BYTES // OOO_MIN_SEGMENT
# a real loss is retransmitted within an RTO (Linux: 200 ms - 2 min; typ. < 1 s)
HOLE_TIMEOUT_NS: Final = 2_000_000_000
SWEEP_INTERVAL_NS: Final = 5_000_000_000  # packet time between idle/hole sweeps (an O(flows) walk)
CLOSED_LINGER_NS: Final = 10_000_000_000  # how long a closed tuple swallows late segments
# The receive window assumed for an RST check when the real one is unknown (the handshake, and with it the
# window scale, was not seen; or the receiver never sent a segment): generous, since wrongly ignoring a real
# RST keeps a dead connection until it idles out, while a blind RST guessing a sequence number lands in it
# with a chance of 1 in 256. 16 MiB is the usual tuned net.core.rmem_max (Linux's default maximum is 6 MiB).
UNKNOWN_RST_WINDOW: Final = 16 * 1024 * 1024
MAX_CLOSED = 65536  # remembered closed tuples (two per connection): 10 s of 3000 closes/s; ~6 MiB
# the flags that decide whether a segment is a bare SYN (ECE/CWR of an ECN SYN, PSH, URG do not matter)
_SYN_KIND: Final = SYN | ACK | FIN | RST
EVICTION_SAMPLE: Final = 16  # flows looked at to choose an eviction victim
# addresses whose text is remembered for the endpoints of new flows (one inet_ntop per address, not two per
# flow: a DNS stub resolver makes a flow per query between the same two hosts). A node's peers are mostly few
# (its servers, their clients behind a few load balancers); 4096 texts are ~0.4 MiB. Emptied when full
# (`FlowStats.addr_cache_resets` counts it: only the saving is lost)
MAX_ADDR_TEXTS: Final = 4096


class StreamHandler(Protocol):
    """What the flow layer drives (a `pairing.session.Session`)."""

    def data(self, direction: int, data: memoryview, ts_ns: int) -> None: ...
    def gap(self, direction: int, nbytes: int, ts_ns: int) -> None: ...
    def eof(self, direction: int, ts_ns: int) -> None: ...
    def close(self, ts_ns: int) -> None: ...
    def settled(self) -> bool: ...  # every request answered (asked of UDP conversations after an answer)


# (server port, transport) → which protocol; returns a handler factory or None when no rule matches
Endpoint = tuple[str, int]
HandlerFactory = Callable[[str, Endpoint, Endpoint, bool, int], StreamHandler]  # + transport (6/17)
# A connection that so far is one SYN (or its retransmissions): (flow id, first and last packet time, the
# SYN's sequence number, its window, its window scale, protocol, packets), keyed by its client→server
# tuple; the Flow, its streams and its handler are made from it by its next segment (`_promote`).
HalfOpen = tuple[int, int, int, int, int, int, str, int]


# What one tracked connection costs, for sizing the table from a memory budget: an established HTTP/1
# connection with its decoder and matcher measures ~4.5 KiB (tracemalloc, bench/flow_memory.py; 1.5 KiB of
# it the two deques of decoder and matcher); a half-open one (a bare SYN: a SYN flood, a scan) ~350 bytes,
# since it is a tuple until its second segment. Budgeting every flow at the established cost keeps a table
# full of either within the budget.
FLOW_BYTES: Final = 4608
# 58 254 flows (the former fixed 65 536 were ~290 MiB, not the "128" it said)
DEFAULT_MAX_MEMORY_MB: Final = 256
MIN_FLOWS: Final = 1024  # a budget too small to be useful still tracks this many


def flows_for_memory(max_memory_mb: int) -> int:
    """The flow-table bound for a memory budget in MiB (`sniffer.maxMemoryMB`, `watch --max-memory-mb`)."""
    return max(MIN_FLOWS, max_memory_mb * 1024 * 1024 // FLOW_BYTES)


@value
class FlowConfig:
    max_flows: int = flows_for_memory(DEFAULT_MAX_MEMORY_MB)  # bounded table, evicting when full
    idle_timeout_ns: int = 300 * 1_000_000_000  # connExpired, reference §2.2 (default 5m)
    # UDP conversations have no close: an unanswered query is given up long before 5 minutes (resolvers
    # retry after 1-5 s), and a table full of them costs every packet (eviction, garbage collection)
    udp_idle_timeout_ns: int = 30 * 1_000_000_000


class FlowStats:
    __slots__ = (
        "acked_gaps",
        "active",
        "addr_cache_resets",
        "closed",
        "created",
        "duplicates",
        "evicted",
        "expired",
        "gap_bytes",
        "gaps",
        "hole_timeouts",
        "late_segments",
        "linger_overflows",
        "midstream",
        "no_flow",
        "ooo_overflows",
        "ooo_segment_overflows",
        "out_of_order",
        "rst_out_of_window",
        "unmatched",
    )

    def __init__(self) -> None:
        self.created = 0
        self.closed = 0  # ended by FIN/RST
        self.expired = 0  # idle longer than the timeout
        self.evicted = 0  # pushed out because the table was full
        self.active = 0
        self.midstream = 0  # joined after the handshake
        self.duplicates = 0  # retransmitted or twice-captured segments dropped
        self.out_of_order = 0  # segments buffered ahead of a hole
        self.ooo_overflows = 0  # holes skipped because the reorder buffer was full (bytes or segments)
        self.ooo_segment_overflows = 0  # of those, full by MAX_OOO_SEGMENTS (with fewer than MAX_OOO_BYTES)
        self.hole_timeouts = 0  # holes skipped because they were older than HOLE_TIMEOUT_NS
        self.acked_gaps = 0  # holes skipped because the receiver acknowledged them and then sent data, or
        # the sender moved on past them
        self.gaps = 0  # holes passed to decoders as gaps (for any reason, connection end included)
        self.gap_bytes = 0
        self.late_segments = 0  # segments of recently closed connections
        self.linger_overflows = 0  # closed tuples forgotten before CLOSED_LINGER_NS: MAX_CLOSED reached
        self.no_flow = 0  # segments without payload or SYN for an unknown connection
        self.unmatched = 0  # segments on no rule's port (filtered in user space)
        self.rst_out_of_window = 0  # RSTs ignored: sequence number outside the receive window (RFC 5961)
        self.addr_cache_resets = 0  # the address → text memo emptied because MAX_ADDR_TEXTS were in it


class TcpStream:
    """One direction of a TCP connection."""

    __slots__ = (
        "acked",
        "bytes",
        "eof",
        "fin_seq",
        "hole_ns",
        "next_seq",
        "ooo",
        "packets",
        "retrans",
        "syn_seq",
        "wnd",
        "wscale",
    )

    def __init__(self) -> None:
        self.next_seq = -1  # next expected sequence number; -1 until the first SYN or data
        self.syn_seq = -1
        self.fin_seq = -1
        self.eof = False
        self.ooo: Reorder | None = None  # segments ahead of a hole
        self.hole_ns = -1  # packet time when the current hole was first noticed (or last made progress)
        # highest sequence number the peer acknowledged beyond next_seq (tail loss), or -1; before this
        # direction's first segment (joined mid-stream), the peer's last acknowledgement: where it starts
        self.acked = -1
        self.packets = 0
        self.bytes = 0
        self.retrans = 0
        self.wnd = -1  # the receive window this direction's sender last advertised (unscaled); -1 unknown
        self.wscale = -1  # the window scale shift its SYN offered; -1 none or no SYN seen


class Reorder:
    """Segments of one direction buffered ahead of a hole, and which of them starts first.

    `segs` maps a segment's sequence number to (payload, capture time); `heap` holds the same starts as
    offsets from `base` (a sequence number at or before every start), so the first one is `heap[0]` in
    O(1) whatever arrived in whatever order (a dict scan per delivered segment made one-byte segments cost
    O(n) each). Offsets stay exact while every start is less than 2**32 from `base`: the buffer is rebased
    when the stream has moved on by a quarter of the sequence space (`rebase`).
    """

    __slots__ = ("base", "heap", "nbytes", "segs")

    def __init__(self, base: int) -> None:
        self.base = base
        self.heap: list[int] = []
        self.segs: dict[int, tuple[bytes, int]] = {}
        self.nbytes = 0  # payload bytes held

    def __len__(self) -> int:
        return len(self.segs)

    def first(self) -> int:
        """The lowest buffered start (the buffer is not empty)."""
        return (self.base + self.heap[0]) & MASK

    def reached(self, nxt: int) -> bool:
        """Whether a buffered segment starts at or before `nxt`."""
        return bool(self.heap) and (nxt - self.base - self.heap[0]) & MASK < HALF

    def add(self, seq: int, data: bytes, ts: int) -> None:
        old = self.segs.get(seq)
        if old is None:
            heapq.heappush(self.heap, (seq - self.base) & MASK)
        else:
            self.nbytes -= len(old[0])
        self.segs[seq] = (data, ts)
        self.nbytes += len(data)

    def pop_first(self) -> tuple[int, bytes, int]:
        start = (self.base + heapq.heappop(self.heap)) & MASK
        data, ts = self.segs.pop(start)
        self.nbytes -= len(data)
        return start, data, ts

    def rebase(self, nxt: int) -> None:
        """Offsets from `nxt` (every start is at or after it, less than HALF ahead) when it is far from base."""
        if (nxt - self.base) & MASK >= HALF // 2 and not self.reached(nxt):
            self.base = nxt
            self.heap = [(s - nxt) & MASK for s in self.segs]
            heapq.heapify(self.heap)


class Flow:
    """One connection (TCP) or conversation (UDP)."""

    __slots__ = (
        "client",
        "first_ns",
        "handler",
        "id",
        "keys",
        "last_ns",
        "midstream",
        "protocol",
        "server",
        "streams",
        "transport",
    )

    def __init__(
        self, fid: int, keys: tuple[bytes, bytes], client: Endpoint, server: Endpoint, transport: int, ts: int
    ) -> None:
        self.id = fid
        self.keys = keys  # (client→server key, server→client key)
        self.client = client
        self.server = server
        self.transport = transport
        self.first_ns = ts
        self.last_ns = ts
        self.midstream = False
        self.protocol = ""
        self.streams = (TcpStream(), TcpStream())
        self.handler: StreamHandler | None = None


class _Rules:
    """Port (and optional host) → protocol name, per transport."""

    def __init__(self, rules: list[tuple[str, str, frozenset[int], frozenset[bytes] | None]]) -> None:
        # (protocol, transport, ports, hosts) — hosts are packed addresses, None: any
        self.any_host: dict[tuple[int, int], str] = {}
        self.with_host: dict[tuple[int, int], list[tuple[frozenset[bytes], str]]] = {}
        for protocol, transport, ports, hosts in rules:
            t = PROTO_TCP if transport == "tcp" else 17
            for port in ports:
                if hosts is None:
                    self.any_host.setdefault((t, port), protocol)
                else:
                    self.with_host.setdefault((t, port), []).append((hosts, protocol))
        # without host rules (the common case), per transport: port → protocol, looked up by the port alone
        self.udp_ports: dict[int, str] | None = None
        if not self.with_host:
            self.udp_ports = {port: name for (t, port), name in self.any_host.items() if t == 17}

    def match(self, transport: int, port: int, src: bytes, dst: bytes) -> str | None:
        name = self.any_host.get((transport, port))
        if name is not None:
            return name
        for hosts, proto in self.with_host.get((transport, port), ()):
            if src in hosts or dst in hosts:
                return proto
        return None

    def udp_server(self, sport: int, dport: int, src: bytes, dst: bytes) -> tuple[str, bool] | None:
        """The protocol of a new UDP conversation and whether its sender is the client (its destination
        port matches a rule; both match: the lower port serves), in one look at the rules; None: no rule."""
        ports = self.udp_ports
        if ports is not None:
            pd = ports.get(dport)
            ps = ports.get(sport)
        else:
            pd = self.match(17, dport, src, dst)
            ps = self.match(17, sport, src, dst)
        if pd is not None and (ps is None or dport <= sport):
            return pd, True
        if ps is not None:
            return ps, False
        return None


def _rearm(st: TcpStream, ts: int) -> None:
    """After progress past a hole: restart the hole clock if bytes are still missing, else stop it."""
    nxt = st.next_seq
    fin_ahead = st.fin_seq >= 0 and not st.eof and 0 < (st.fin_seq - nxt) & MASK < HALF
    acked_ahead = st.acked >= 0 and 0 < (st.acked - nxt) & MASK < HALF
    if st.ooo or fin_ahead or acked_ahead:
        st.hole_ns = ts
    else:
        st.hole_ns = -1
        st.acked = -1


def _start(st: TcpStream, seq: int, n: int) -> int:
    """The first data of a direction joined mid-stream: where does its stream go on from?

    From the peer's ACK when one was seen and this segment is a little ahead of it (the receiver still
    waits for the bytes between: a capture may show them after this segment); otherwise from here. After
    the direction's FIN, nowhere: the segment is placed behind (a duplicate, dropped).
    """
    if st.eof:
        return (seq + n) & MASK
    hint = st.acked
    st.acked = -1
    nxt = hint if hint >= 0 and 0 < (seq - hint) & MASK <= MAX_OOO_BYTES else seq
    st.next_seq = nxt
    return nxt


def _rst_acceptable(flow: Flow, d: int, seq: int) -> bool:
    """Whether an RST from direction `d` with sequence number `seq` ends the connection (RFC 5961 §3.2).

    A receiver accepts an RST whose sequence number lies in its receive window [RCV.NXT, RCV.NXT +
    RCV.WND). A passive observer approximates RCV.NXT by the next sequence number it expects from `d` (after
    `d`'s FIN: the FIN's own, or the one after it; joined mid-stream before `d` sent anything: the
    receiver's last ACK), and RCV.WND by the window the receiver last advertised, scaled by its shift when
    both SYNs were seen (RFC 7323 §2.2: scaling is on only when both offered it); otherwise, or when the
    receiver never advertised one, by UNKNOWN_RST_WINDOW. With no sequence number to compare with at all
    (nothing of `d` and no ACK of it seen, e.g. an RST answering a SYN) the RST is accepted, as before.

    RFC 5961 lets a stack answer an in-window RST that is not exactly RCV.NXT with a challenge ACK instead;
    we accept it (the capture may have missed bytes of `d`, which would put the real RCV.NXT ahead of ours).
    """
    st = flow.streams[d]
    peer = flow.streams[d ^ 1]
    lo = st.next_seq
    slack = 0
    if lo < 0:
        if st.eof and st.fin_seq >= 0:
            lo, slack = st.fin_seq, 1
        elif st.acked >= 0:
            lo = st.acked
        else:
            return True
    wnd = peer.wnd
    if wnd < 0 or st.syn_seq < 0 or peer.syn_seq < 0:
        wnd = max(wnd, UNKNOWN_RST_WINDOW)
    elif st.wscale >= 0 and peer.wscale >= 0:
        wnd <<= peer.wscale
    return (seq - lo) & MASK < max(wnd, 1) + slack


def _reverse_key(seg: Segment) -> bytes:
    """The packed tuple of the segment's other direction (`Segment.key`: src, dst, sport, dport)."""
    key = seg.key
    return seg.dst + seg.src + key[-2:] + key[-4:-2]


def _split_key(key: bytes) -> tuple[bytes, bytes, int, int]:
    """(src, dst, sport, dport) of a packed tuple."""
    alen = (len(key) - 4) >> 1
    return (
        key[:alen],
        key[alen : 2 * alen],
        int.from_bytes(key[-4:-2], "big"),
        int.from_bytes(key[-2:], "big"),
    )


def _flow_id(flow: Flow) -> int:
    return flow.id


def _ip(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)


class FlowTable:
    """Flows of both transports, their lifetimes and TCP ordering (see module docstring)."""

    def __init__(
        self,
        rules: list[tuple[str, str, frozenset[int], frozenset[bytes] | None]],
        new_handler: HandlerFactory,
        config: FlowConfig | None = None,
        detection: Detection | None = None,
    ) -> None:
        self.config = config or FlowConfig()
        # detection by content for connections no rule claims (flow/detect.py); None: rules only
        self.detection = detection
        self.stats = FlowStats()
        self._rules = _Rules(rules)
        self._new_handler = new_handler
        self._tcp: dict[bytes, tuple[Flow, int]] = {}
        self._udp: dict[bytes, tuple[Flow, int]] = {}
        self._flows: dict[int, Flow] = {}  # by id, oldest first
        # ids in creation order, for eviction: a dict iterated from its front after many deletions there
        # skips every deleted slot first (O(table) per eviction in a SYN flood); ids of removed flows stay
        # until they reach the front, and the deque is rebuilt when they outnumber the live ones
        self._order: deque[int] = deque()
        self._closed: dict[bytes, int] = {}  # recently closed tuple → close time
        # connections that are one SYN so far, oldest first (a SYN flood, a port scan, a refused or
        # unanswered connect): a tuple each instead of a Flow with its streams and handler, ~4x smaller and
        # ~5x faster to make and to evict. They count against max_flows like flows, are counted in stats
        # as created/active/evicted/expired like flows, and appear in `flows()` and `on_remove` as the Flow
        # they stand for. An OrderedDict: a plain dict's front after many deletions there is a run of
        # deleted slots that every eviction would skip (O(table) each)
        self._syn: OrderedDict[bytes, HalfOpen] = OrderedDict()
        self._next_id = 0
        self._unordered = False  # `_flows` is not in id order (`_by_age`)
        self._next_sweep = -1
        self.on_remove: Callable[[Flow, str], None] | None = None  # (flow, "closed"|"expired"|"evicted"|"")
        self.now_ns = 0
        # packed address → its text, for the endpoints of new flows (MAX_ADDR_TEXTS)
        self._addr_text: dict[bytes, str] = {}

    # -- entry points ----------------------------------------------------------------------------------------
    def segment(self, seg: Segment) -> None:
        ts = seg.ts_ns
        if ts > self.now_ns:
            self.now_ns = ts
            if ts >= self._next_sweep:
                self._sweep(ts)
        if seg.transport == PROTO_TCP:
            self._tcp_segment(seg)
        else:
            self._udp_datagram(seg)

    def tick(self, now_ns: int) -> None:
        """Packet time moves on without a packet (live capture, idle link)."""
        if now_ns > self.now_ns:
            self.now_ns = now_ns
            if now_ns >= self._next_sweep:
                self._sweep(now_ns)

    def finish(self, ts_ns: int | None = None) -> None:
        """End of capture: every flow's streams end, holes become gaps, pending requests unanswered."""
        ts = self.now_ns if ts_ns is None else ts_ns
        for flow in self._by_age():
            self._end(flow, ts, "")
        while self._syn:
            self._drop_half_open(*self._syn.popitem(last=False), "")
        self._closed.clear()

    def set_rules(self, rules: list[tuple[str, str, frozenset[int], frozenset[bytes] | None]]) -> None:
        """New rules (a reload): flows whose server port the new rules still give the same protocol go
        on untouched; the others end now (their pending requests become unanswered)."""
        self._rules = _Rules(rules)
        for flow in list(self._flows.values()):
            family = socket.AF_INET6 if ":" in flow.client[0] else socket.AF_INET
            client_ip = socket.inet_pton(family, flow.client[0])
            server_ip = socket.inet_pton(family, flow.server[0])
            covered = self._rules.match(
                flow.transport, flow.server[1], client_ip, server_ip
            ) or self._rules.match(flow.transport, flow.client[1], client_ip, server_ip)
            if covered != flow.protocol and (covered is not None or self.detection is None):
                self._end(flow, self.now_ns, "closed")  # (detected flows stay while detection is on)
        for key, half in list(self._syn.items()):
            src, dst, sport, dport = _split_key(key)
            covered = self._rules.match(PROTO_TCP, dport, src, dst) or self._rules.match(
                PROTO_TCP, sport, src, dst
            )
            if covered != half[6] and (covered is not None or self.detection is None):
                del self._syn[key]
                self._drop_half_open(key, half, "closed")

    def flows(self) -> list[Flow]:
        """Every tracked connection, oldest first (a connection that is one SYN so far: the Flow it stands
        for, made for the caller)."""
        flows = self._by_age()
        if self._syn:
            flows += [self._half_open_flow(key, half) for key, half in self._syn.items()]
            flows.sort(key=_flow_id)
        return flows

    def _by_age(self) -> list[Flow]:
        """The flows in creation order (id order): the order in which they end at a sweep or the end of the
        capture, so that their records come out in the same order whichever of them began with a SYN
        (a flow made from a half-open connection is inserted when its second segment arrives)."""
        flows = list(self._flows.values())
        if self._unordered:
            flows.sort(key=_flow_id)
            self._flows = {flow.id: flow for flow in flows}
            self._unordered = False
        return flows

    def lookup(self, seg: Segment) -> Flow | None:
        """The flow `seg` belongs to, if it is tracked (`watch -w` files packets by connection)."""
        entry = (self._tcp if seg.transport == PROTO_TCP else self._udp).get(seg.key)
        if entry is not None:
            return entry[0]
        half = self._syn.get(seg.key) if seg.transport == PROTO_TCP else None
        # a bare SYN is only a half-open tuple: the Flow it stands for (the same id it is promoted with)
        return self._half_open_flow(seg.key, half) if half is not None else None

    # -- TCP -------------------------------------------------------------------------------------------------
    def _tcp_segment(self, seg: Segment) -> None:
        entry = self._tcp.get(seg.key)
        if entry is None:
            entry = self._unknown_tcp(seg)
            if entry is None:
                return
        flow, d = entry
        flags = seg.flags
        ts = seg.ts_ns
        if flow.protocol is UNDETECTED and not flags & SYN:
            # no detector claimed it: one lookup per packet; its end is all that is still looked at
            flow.last_ns = ts
            if flags & (FIN | RST):
                self._remove(flow, ts, linger=True, reason="closed")
                self.stats.closed += 1
            return
        st = flow.streams[d]
        seq = seg.seq
        if flags & RST and not _rst_acceptable(flow, d, seq):
            # a blind or stale reset: the receiver drops it (RFC 5961 §3.2), so the conversation goes on
            self.stats.rst_out_of_window += 1
            return
        flow.last_ns = ts
        st.packets += 1
        if seg.window >= 0:
            st.wnd = seg.window
        if flags & SYN:
            seq = self._tcp_syn(flow, st, seg)
            if seq < 0:
                return  # a new connection on the tuple: the segment went into it
        if flags & ACK:
            peer = flow.streams[d ^ 1]
            pn = peer.next_seq
            if pn < 0:
                # nothing of the other side seen yet (joined mid-stream): its stream goes on from where
                # this side's ACK points
                peer.acked = seg.ack
            elif 0 < (seg.ack - pn) & MASK < HALF and self._tcp_ack(flow, d, st, peer, seg):
                return
        payload = seg.payload
        n = len(payload)
        if n:
            nxt = st.next_seq
            if nxt == seq and not st.ooo and st.hole_ns < 0:
                # the common case, inline: the next bytes of a stream with nothing held back (what
                # _tcp_data does with them, without its call and its checks for holes)
                st.bytes += n
                st.next_seq = (seq + n) & MASK
                handler = flow.handler
                if handler is not None:
                    handler.data(d, payload, ts)
            else:
                self._tcp_data(flow, d, st, seq, payload, ts)
        if flags & RST:
            self._end(flow, ts, "closed", linger=True)
            return
        if flags & FIN and not st.eof:
            self._fin(st, (seq + n) & MASK, ts)
        if st.hole_ns >= 0 and ts - st.hole_ns > HOLE_TIMEOUT_NS:
            if self._skip_hole(flow, d, st, ts):
                self.stats.hole_timeouts += 1
        if st.fin_seq >= 0 and not st.eof and st.next_seq == st.fin_seq:
            self._eof(flow, d, st, ts)

    def _tcp_syn(self, flow: Flow, st: TcpStream, seg: Segment) -> int:
        """A SYN on a tracked flow's direction `st`: noted, returning the sequence number after it; or, when it
        starts a new connection on the tuple, the old one ends, the segment goes into the new one, and -1."""
        seq = seg.seq
        if (
            seq != st.syn_seq
            if st.syn_seq >= 0
            else st.next_seq >= 0 or (flow.midstream and not seg.flags & ACK)
        ):
            # a new connection on a reused tuple (the old one ended unseen), or a connection joined
            # mid-stream whose start we now see: begin afresh so the SYN decides the roles (it is the
            # new connection's packet, not the old one's)
            st.packets -= 1
            self._end(flow, seg.ts_ns, "closed", linger=True)
            self._tcp_segment(seg)
            return -1
        st.syn_seq = seq
        st.wscale = seg.wscale
        seq = (seq + 1) & MASK
        if st.next_seq < 0:
            st.next_seq = seq
            st.acked = -1
        return seq

    def _tcp_ack(self, flow: Flow, d: int, st: TcpStream, peer: TcpStream, seg: Segment) -> bool:
        """The segment acknowledges bytes of the other direction (`peer`) beyond what was delivered of it.
        Returns True when the segment needs nothing more here: delivered already, or the connection ended."""
        ts = seg.ts_ns
        if self._acked_hole(flow, d ^ 1, peer, seg.ack, ts, len(seg.payload) > 0):
            # the other side's bytes up to the ACK were delivered or declared lost; its bytes beyond it may
            # answer this segment: this segment first (its ACK now acknowledges nothing undelivered, so
            # this does not recurse again), then them
            st.packets -= 1
            self._tcp_segment(seg)
            if flow.handler is not None and peer.ooo:
                at = peer.hole_ns if 0 <= peer.hole_ns <= ts else ts
                self._drain(flow, d ^ 1, peer, ts, floor=at)
                if peer.fin_seq >= 0 and not peer.eof and peer.next_seq == peer.fin_seq:
                    self._eof(flow, d ^ 1, peer, ts)
            return True
        return flow.handler is None  # that ended the connection

    def _tcp_data(self, flow: Flow, d: int, st: TcpStream, seq: int, payload: memoryview, ts: int) -> None:
        """The payload of a segment of direction `d` (starting at `seq`): delivered if it is next, buffered
        if ahead, trimmed to what is new or dropped if behind (a retransmission)."""
        n = len(payload)
        st.bytes += n
        nxt = st.next_seq
        if nxt < 0:
            nxt = _start(st, seq, n)
        off = (seq - nxt) & MASK
        if off == 0:
            st.next_seq = (seq + n) & MASK
            handler = flow.handler
            if handler is not None:
                handler.data(d, payload, ts)
            if st.ooo:
                self._drain(flow, d, st, ts)
            elif st.hole_ns >= 0:
                _rearm(st, ts)
        elif off < HALF:
            self._buffer(flow, d, st, seq, payload, ts)
        else:
            st.retrans += 1
            behind = 0x100000000 - off
            if behind >= n:
                self.stats.duplicates += 1
                return
            st.next_seq = (seq + n) & MASK
            if flow.handler is not None:
                flow.handler.data(d, payload[behind:], ts)
            if st.ooo:
                self._drain(flow, d, st, ts)

    def _unknown_tcp(self, seg: Segment) -> tuple[Flow, int] | None:
        """A segment of no tracked flow: the next segment of a half-open connection makes its flow; a bare
        SYN is noted as half-open (or, repeated, updates it); other segments start a flow mid-stream, or
        are counted and dropped. Returns the flow the segment goes on into, if any."""
        syn = self._syn
        if syn:
            key = seg.key
            half = syn.get(key)
            if half is None:
                key = _reverse_key(seg)
                half = syn.get(key)
            if half is not None:
                if key is seg.key and seg.flags & _SYN_KIND == SYN and seg.seq == half[3] and not seg.payload:
                    # its SYN retransmitted: what the SYN path of `_tcp_segment` does to a flow's stream
                    fid, first, _, isn, wnd, _, protocol, packets = half
                    wnd = wnd if seg.window < 0 else seg.window
                    syn[key] = (fid, first, seg.ts_ns, isn, wnd, seg.wscale, protocol, packets + 1)
                    return None
                del syn[key]
                return self._promote(key, half, seg)
        flags = seg.flags
        n = len(seg.payload)
        if not (n or flags & SYN):
            self.stats.no_flow += 1
            return None
        if self._closed and not flags & SYN and seg.key in self._closed:
            self.stats.late_segments += 1
            return None
        if flags & _SYN_KIND == SYN and not n:
            self._half_open(seg)
            return None
        return self._create_tcp(seg)

    def _half_open(self, seg: Segment) -> None:
        """A bare SYN of a new connection: noted as half-open (`HalfOpen`), counted as a created flow."""
        protocol = self._rules.match(PROTO_TCP, seg.dport, seg.src, seg.dst) or self._rules.match(
            PROTO_TCP, seg.sport, seg.src, seg.dst
        )
        if protocol is None:
            if self.detection is None:
                self.stats.unmatched += 1
                return
            protocol = DETECT  # its content decides, once it has some (`_promote`)
        ts = seg.ts_ns
        while len(self._flows) + len(self._syn) >= self.config.max_flows:
            if not self._evict(ts):
                break
        closed = self._closed
        if closed:  # a SYN starts a new connection on a closed tuple (as `_create` does)
            closed.pop(seg.key, None)
            closed.pop(_reverse_key(seg), None)
        self._next_id += 1
        self._syn[seg.key] = (self._next_id, ts, ts, seg.seq, seg.window, seg.wscale, protocol, 1)
        self.stats.created += 1
        self.stats.active += 1

    def _half_open_flow(self, key: bytes, half: HalfOpen) -> Flow:
        """The Flow a half-open connection stands for: as `_create` and the SYN path of `_tcp_segment` made
        it (without its handler: `_promote` adds that)."""
        fid, first, last, isn, wnd, wscale, protocol, packets = half
        src, dst, sport, dport = _split_key(key)
        flow = Flow(
            fid,
            (key, dst + src + key[-2:] + key[-4:-2]),
            (_ip(src), sport),
            (_ip(dst), dport),
            PROTO_TCP,
            first,
        )
        flow.last_ns = last
        flow.protocol = protocol
        st = flow.streams[0]
        st.packets = packets
        st.wnd = wnd
        st.syn_seq = isn
        st.wscale = wscale
        st.next_seq = (isn + 1) & MASK
        return flow

    def _promote(self, key: bytes, half: HalfOpen, seg: Segment) -> tuple[Flow, int]:
        """The second segment of a half-open connection: its flow is made, as its SYN would have made it."""
        flow = self._half_open_flow(key, half)
        if flow.protocol is DETECT and self.detection is not None:
            flow.handler = Detecting(flow, self.detection)
        else:
            flow.handler = self._new_handler(flow.protocol, flow.client, flow.server, False, PROTO_TCP)
        tcp = self._tcp
        tcp[flow.keys[0]] = (flow, 0)
        tcp[flow.keys[1]] = (flow, 1)
        flows = self._flows
        if flows and next(reversed(flows)) > flow.id:
            self._unordered = True  # a flow made since its SYN is before it in `_flows`
        flows[flow.id] = flow
        self._order.append(flow.id)
        return flow, 0 if key == seg.key else 1

    def _drop_half_open(self, key: bytes, half: HalfOpen, reason: str) -> None:
        """A half-open connection (already out of `_syn`) ends: what `_end` and `_remove` do for a flow."""
        if self.on_remove is not None:
            self.on_remove(self._half_open_flow(key, half), reason)
        self.stats.active -= 1
        if reason:
            setattr(self.stats, reason, getattr(self.stats, reason) + 1)

    def _create_tcp(self, seg: Segment) -> tuple[Flow, int] | None:
        flags = seg.flags
        rules = self._rules
        if flags & SYN:
            client_is_src = not flags & ACK
            server_port, client_port = (seg.dport, seg.sport) if client_is_src else (seg.sport, seg.dport)
            protocol = rules.match(PROTO_TCP, server_port, seg.src, seg.dst) or rules.match(
                PROTO_TCP, client_port, seg.src, seg.dst
            )
        else:
            pd = rules.match(PROTO_TCP, seg.dport, seg.src, seg.dst)
            ps = rules.match(PROTO_TCP, seg.sport, seg.src, seg.dst)
            if pd is not None and (ps is None or seg.dport <= seg.sport):
                client_is_src, protocol = True, pd
            else:
                client_is_src, protocol = False, ps
        if protocol is None:
            if self.detection is None:
                self.stats.unmatched += 1
                return None
            protocol = DETECT
            if not flags & SYN:
                client_is_src = seg.dport <= seg.sport  # no rule says who serves: guess the lower port
        return self._create(seg, PROTO_TCP, protocol, client_is_src, midstream=not flags & SYN)

    def _create(
        self, seg: Segment, transport: int, protocol: str, client_is_src: bool, midstream: bool
    ) -> tuple[Flow, int]:
        # a loop: a reload may have lowered the bound
        while len(self._flows) + len(self._syn) >= self.config.max_flows:
            if not self._evict(seg.ts_ns):
                break
        key = seg.key
        src, dst = seg.src, seg.dst
        rev = dst + src + key[-2:] + key[-4:-2]  # _reverse_key, inline
        texts = self._addr_text
        src_ip = texts.get(src)
        dst_ip = texts.get(dst)
        if src_ip is None or dst_ip is None:
            if len(texts) >= MAX_ADDR_TEXTS - 1:
                texts.clear()
                self.stats.addr_cache_resets += 1
            src_ip = texts[src] = _ip(src)
            dst_ip = texts[dst] = _ip(dst)
        src_ep = (src_ip, seg.sport)
        dst_ep = (dst_ip, seg.dport)
        if client_is_src:
            keys, client, server, d = (key, rev), src_ep, dst_ep, 0
        else:
            keys, client, server, d = (rev, key), dst_ep, src_ep, 1
        self._next_id += 1
        flow = Flow(self._next_id, keys, client, server, transport, seg.ts_ns)
        flow.midstream = midstream
        flow.protocol = protocol
        if protocol is DETECT and self.detection is not None:
            flow.handler = Detecting(flow, self.detection)
        else:
            flow.handler = self._new_handler(protocol, client, server, midstream, transport)
        table = self._tcp if transport == PROTO_TCP else self._udp
        table[keys[0]] = (flow, 0)
        table[keys[1]] = (flow, 1)
        closed = self._closed
        if closed and transport == PROTO_TCP:
            closed.pop(keys[0], None)
            closed.pop(keys[1], None)
        self._flows[flow.id] = flow
        order = self._order
        order.append(flow.id)
        if len(order) > 2 * len(self._flows) + EVICTION_SAMPLE:
            self._order = deque(self._flows)  # rebuilt: O(flows), after as many removals
        self.stats.created += 1
        self.stats.active += 1
        if midstream:
            self.stats.midstream += 1
        return flow, d

    def _buffer(self, flow: Flow, d: int, st: TcpStream, seq: int, payload: memoryview, ts: int) -> None:
        ooo = st.ooo
        if ooo is None:
            ooo = st.ooo = Reorder(st.next_seq)
        else:
            ooo.rebase(st.next_seq)
        old = ooo.segs.get(seq)
        if old is not None and len(old[0]) >= len(payload):
            st.retrans += 1
            self.stats.duplicates += 1
            return
        ooo.add(seq, payload.tobytes(), ts)
        self.stats.out_of_order += 1
        if st.hole_ns < 0:
            st.hole_ns = ts
        acked = st.acked
        if acked >= 0 and (seq - acked) & MASK < HALF:
            # the sender moved on past bytes the receiver acknowledged and we never saw: no retransmission
            # will show them (waiting for this segment lets a capture show an ACK before its data)
            while st.acked >= 0 and 0 < (st.acked - st.next_seq) & MASK < HALF:
                if not self._skip_hole(flow, d, st, ts, limit=st.acked):
                    break
                self.stats.acked_gaps += 1
                if flow.handler is None or st.eof:
                    return
        while st.ooo is not None and (st.ooo.nbytes > MAX_OOO_BYTES or len(st.ooo.segs) > MAX_OOO_SEGMENTS):
            # each skip delivers at least the nearest buffered segment, so this ends within bounds
            self.stats.ooo_overflows += 1
            if st.ooo.nbytes <= MAX_OOO_BYTES:
                self.stats.ooo_segment_overflows += 1
            if not self._skip_hole(flow, d, st, ts) or flow.handler is None:
                break

    def _drain(self, flow: Flow, d: int, st: TcpStream, ts: int, floor: int = -1, stop: int = -1) -> None:
        """Deliver buffered segments that the stream has reached (and, with `stop`, that begin before it).

        A hole filled by its retransmission (`floor` < 0) makes the data behind it readable now, at `ts`. A
        hole declared lost lets each segment keep the time it was captured (never earlier than `floor`,
        the time of the stream's last delivery), since the receiver had it then.
        """
        ooo = st.ooo
        assert ooo is not None
        handler = flow.handler
        at = ts
        while ooo.segs:
            nxt = st.next_seq
            if stop >= 0 and (nxt - stop) & MASK < HALF:
                break
            if not ooo.reached(nxt):
                break  # the first buffered segment is still ahead: a hole
            # it starts here, or before (a repacketised retransmission overlapping what was delivered)
            start, data, seg_ts = ooo.pop_first()
            off = (nxt - start) & MASK
            if off < len(data):
                st.next_seq = (start + len(data)) & MASK
                if handler is not None:
                    if floor >= 0:
                        at = floor = max(floor, seg_ts)
                    handler.data(d, memoryview(data)[off:] if off else memoryview(data), at)
            # else wholly delivered already: dropped
        if not ooo.segs and st.ooo is ooo:
            st.ooo = None  # the next hole starts a buffer based at its own next_seq
        _rearm(st, ts)

    def _skip_hole(
        self, flow: Flow, d: int, st: TcpStream, ts: int, final: bool = False, limit: int = -1, stop: int = -1
    ) -> bool:
        """Declare the next hole lost: the bytes from next_seq to the nearest buffered segment or, with nothing
        buffered, to the FIN or the furthest acknowledged byte (no further than `limit`, when given), then
        deliver what became contiguous (only what begins before `stop`, when given).
        Returns whether a gap was declared.

        `final`: the connection is ending (`_end` ends the streams itself: no EOF from here).
        """
        nxt = st.next_seq
        ooo = st.ooo
        if ooo and nxt >= 0 and ooo.reached(nxt):
            # contiguous data held back behind an answer (`_acked_hole`) goes first
            self._drain(flow, d, st, ts, floor=st.hole_ns if 0 <= st.hole_ns <= ts else ts)
            nxt = st.next_seq
            ooo = st.ooo
        target = -1
        if ooo:
            target = ooo.first()
        elif st.fin_seq >= 0 and not st.eof and 0 < (st.fin_seq - nxt) & MASK < HALF:
            target = st.fin_seq
        elif st.acked >= 0 and 0 < (st.acked - nxt) & MASK < HALF:
            target = st.acked
        if target >= 0 and limit >= 0 and 0 < (limit - nxt) & MASK < (target - nxt) & MASK:
            target = limit
        missing = (target - nxt) & MASK
        if target < 0 or nxt < 0 or not 0 < missing < HALF:
            # nothing known to be missing (or a buffer that cannot be reached: dropped, never looped on)
            st.ooo = None
            st.hole_ns = -1
            st.acked = -1
            return False
        self.stats.gaps += 1
        self.stats.gap_bytes += missing
        st.next_seq = target
        # the loss happened after the stream's last delivery (the hole clock restarts at each): say it then
        at = st.hole_ns if 0 <= st.hole_ns <= ts else ts
        if flow.handler is not None:
            flow.handler.gap(d, missing, at)
        if st.ooo:
            self._drain(flow, d, st, ts, floor=at, stop=stop)
        else:
            _rearm(st, ts)
        if not final and st.fin_seq >= 0 and not st.eof and st.next_seq == st.fin_seq:
            self._eof(flow, d, st, ts)
        return True

    def _acked_hole(self, flow: Flow, d: int, st: TcpStream, ack: int, ts: int, answered: bool) -> bool:
        """The peer acknowledged bytes of direction `d` beyond next_seq: the receiver has bytes we lack.

        `answered`: the acknowledgement rides on the peer's own data, which may answer those bytes (a
        response to a request we lost): they are declared lost now, so that no decoder sees the answer
        before the gap in what it answers, and buffered bytes up to `ack` are delivered. Returns True when
        buffered bytes beyond `ack` are now contiguous: they may answer the peer's data, so the caller
        delivers that first. A bare ACK is only noted: the capture may show the data after its ACK
        (reordering between the two directions at the capture point); the hole is declared lost when the
        sender's next segment lands beyond it (`_buffer`), or when it is older than HOLE_TIMEOUT_NS.
        """
        fin = st.fin_seq
        if fin >= 0 and (ack - fin) & MASK < HALF:
            ack = fin  # the ACK of the FIN itself (fin + 1) acknowledges no byte
        if not 0 < (ack - st.next_seq) & MASK < HALF:
            return False
        if st.acked < 0 or 0 < (ack - st.acked) & MASK < HALF:
            st.acked = ack
        if answered:
            while 0 < (ack - st.next_seq) & MASK < HALF:
                if not self._skip_hole(flow, d, st, ts, limit=ack, stop=ack):
                    break
                self.stats.acked_gaps += 1
                if flow.handler is None or st.eof:
                    return False
            nxt = st.next_seq
            ooo = st.ooo
            return ooo is not None and ooo.reached(nxt)
        if st.hole_ns < 0:
            st.hole_ns = ts
        elif ts - st.hole_ns > HOLE_TIMEOUT_NS and self._skip_hole(flow, d, st, ts):
            self.stats.hole_timeouts += 1
        return False

    def _fin(self, st: TcpStream, fin_seq: int, ts: int) -> None:
        st.fin_seq = fin_seq
        if st.next_seq < 0:
            st.next_seq = fin_seq  # nothing of this direction was seen: it ends here
            st.acked = -1
        elif fin_seq != st.next_seq and st.hole_ns < 0:
            st.hole_ns = ts  # bytes before the FIN are missing: start the hole clock

    def _eof(self, flow: Flow, d: int, st: TcpStream, ts: int) -> None:
        st.eof = True
        # nothing more of this direction is delivered (_start drops it), and no ACK of it is a hole (the
        # ACK of the FIN acknowledges the FIN's own sequence number)
        st.next_seq = -1
        st.hole_ns = -1
        st.acked = -1
        st.ooo = None
        if flow.handler is not None:
            flow.handler.eof(d, ts)
        if flow.streams[d ^ 1].eof and flow.id in self._flows:
            self._remove(flow, ts, linger=True, reason="closed")
            self.stats.closed += 1

    def _end(self, flow: Flow, ts: int, reason: str, linger: bool = False) -> None:
        """The connection ends now (RST, expiry, eviction, a rules reload, end of capture): flush holes, EOF,
        close.

        `reason` names the FlowStats counter to increment ("closed", "expired", "evicted"; "" for none).
        `linger`: it was closed on the wire (RST, or a new SYN on its tuple): its tuple swallows late
        segments for CLOSED_LINGER_NS. Expired, evicted and reloaded flows were alive: no linger.
        """
        for d, st in enumerate(flow.streams):
            if st.eof:
                continue
            if st.hole_ns >= 0 or st.ooo or st.fin_seq >= 0 or st.acked >= 0:  # else nothing can be missing
                while self._skip_hole(flow, d, st, ts, final=True):
                    pass
            st.eof = True
            if flow.handler is not None:
                flow.handler.eof(d, ts)
        if flow.id in self._flows:
            self._remove(flow, ts, linger=linger, reason=reason)
            if reason:
                setattr(self.stats, reason, getattr(self.stats, reason) + 1)

    def _remove(self, flow: Flow, ts: int, linger: bool, reason: str = "") -> None:
        if self.on_remove is not None:
            self.on_remove(flow, reason)  # last look at the flow's counters (layer-4 metrics)
        handler = flow.handler
        if handler is not None:
            flow.handler = None  # nothing reaches a closed connection's handler
            handler.close(ts)
        table = self._tcp if flow.transport == PROTO_TCP else self._udp
        for key in flow.keys:
            table.pop(key, None)
            if linger and flow.transport == PROTO_TCP:
                closed = self._closed
                closed.pop(key, None)  # kept in closing order: the sweep stops at the first one still fresh
                if len(closed) >= MAX_CLOSED:
                    self.stats.linger_overflows += 1
                    del closed[next(iter(closed))]
                closed[key] = ts
        del self._flows[flow.id]
        self.stats.active -= 1

    # -- UDP -------------------------------------------------------------------------------------------------
    def _udp_datagram(self, seg: Segment) -> None:
        entry = self._udp.get(seg.key)
        if entry is None:
            server = self._rules.udp_server(seg.sport, seg.dport, seg.src, seg.dst)
            if server is not None:
                entry = self._create(seg, 17, server[0], server[1], midstream=False)
            elif self.detection is not None:
                entry = self._create(seg, 17, DETECT, seg.dport <= seg.sport, midstream=False)
            else:
                self.stats.unmatched += 1
                return
        flow, d = entry
        flow.last_ns = seg.ts_ns
        st = flow.streams[d]
        st.packets += 1
        st.bytes += len(seg.payload)
        handler = flow.handler
        if handler is not None and len(seg.payload):
            handler.data(d, seg.payload, seg.ts_ns)
            # an answer that leaves nothing pending ends the conversation (a stub resolver's socket asks
            # once): the flow goes now instead of idling for minutes; a later datagram starts a new one
            if d == 1 and handler.settled():
                self._remove(flow, seg.ts_ns, linger=False, reason="closed")
                self.stats.closed += 1

    # -- housekeeping ----------------------------------------------------------------------------------------
    def _sweep(self, now: int) -> None:
        self._next_sweep = now + SWEEP_INTERVAL_NS
        idle = self.config.idle_timeout_ns
        udp_idle = min(idle, self.config.udp_idle_timeout_ns)
        for flow in self._by_age():
            if now - flow.last_ns > (idle if flow.transport == PROTO_TCP else udp_idle):
                self._end(flow, now, "expired")
                continue
            for d, st in enumerate(flow.streams):
                if st.hole_ns >= 0 and now - st.hole_ns > HOLE_TIMEOUT_NS:
                    if self._skip_hole(flow, d, st, now):
                        self.stats.hole_timeouts += 1
                    if flow.handler is None:
                        break
        syn = self._syn
        for key in [key for key, half in syn.items() if now - half[2] > idle]:
            self._drop_half_open(key, syn.pop(key), "expired")
        closed = self._closed
        while closed:
            key = next(iter(closed))
            if now - closed[key] <= CLOSED_LINGER_NS:
                break
            del closed[key]

    def _evict(self, now: int) -> bool:
        """Make room: the oldest flow if it never carried payload (half-open: a flood of SYNs pushes out its
        own kind first, not the connections being decoded); else, among the oldest EVICTION_SAMPLE flows,
        one that never carried payload, else the least recently active. Half-open connections (a bare SYN)
        go before any flow, oldest first."""
        if self._syn:
            self._drop_half_open(*self._syn.popitem(last=False), "evicted")
            return True
        flows = self._flows
        order = self._order
        while order and order[0] not in flows:
            order.popleft()
        if order:
            oldest = flows[order[0]]
            if not (oldest.streams[0].bytes or oldest.streams[1].bytes):
                # the oldest never carried payload: no better victim (the common case in a flood, O(1))
                self._end(oldest, now, "evicted")
                return True
        victim: Flow | None = None
        best = (True, 0)
        seen = 0
        for fid in order:
            flow = flows.get(fid)
            if flow is None:
                continue
            rank = (flow.streams[0].bytes + flow.streams[1].bytes > 0, flow.last_ns)
            if victim is None or rank < best:
                victim, best = flow, rank
            seen += 1
            if seen >= EVICTION_SAMPLE:
                break
        if victim is None:
            return False
        self._end(victim, now, "evicted")
        return True
