"""Driving a FlowTable by hand: segments built field by field, and a handler that records what it is told.

`Recorder` is the truth-keeper: it records every call in order and asserts the flow layer's contract as
it goes (nothing after `close`, no bytes after a direction's `eof`, gaps of positive size). `script()`
merges adjacent data events so tests state the byte stream, not its segmentation.
"""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Iterable
from typing import Any

from packetd.buildinfo import slot_names
from packetd.flow.table import FlowConfig, FlowTable
from packetd.net.packet import ACK, PROTO_TCP, PROTO_UDP, Segment

C = ("10.0.0.1", 40000)
S = ("10.0.0.2", 80)
SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC
MASK = 0xFFFFFFFF

Event = tuple[Any, ...]


def seg(
    ts: int,
    frm: int,
    seq: int = 0,
    ack: int = 0,
    flags: int = ACK,
    payload: bytes = b"",
    client: tuple[str, int] = C,
    server: tuple[str, int] = S,
    transport: int = PROTO_TCP,
) -> Segment:
    """A segment from the client (`frm` 0) or the server (1) of the (client, server) pair."""
    src, dst = (client, server) if frm == 0 else (server, client)
    s, d = socket.inet_aton(src[0]), socket.inet_aton(dst[0])
    return Segment(
        ts,
        transport,
        s,
        d,
        src[1],
        dst[1],
        seq & MASK,
        ack & MASK,
        flags if transport == PROTO_TCP else 0,
        memoryview(payload),
        s + d + struct.pack("!HH", src[1], dst[1]),
    )


def udp(
    ts: int, frm: int, payload: bytes, client: tuple[str, int] = C, server: tuple[str, int] = S
) -> Segment:
    return seg(ts, frm, payload=payload, client=client, server=server, transport=PROTO_UDP)


class Recorder:
    """A StreamHandler that records every call and checks the contract."""

    def __init__(
        self, protocol: str, client: tuple[str, int], server: tuple[str, int], midstream: bool, transport: int
    ) -> None:
        self.protocol = protocol
        self.client = client
        self.server = server
        self.midstream = midstream
        self.transport = transport
        self.events: list[Event] = []
        self.closed = False
        self.eofs: set[int] = set()

    def data(self, direction: int, data: memoryview, ts_ns: int) -> None:
        assert not self.closed, "data after close"
        assert direction not in self.eofs, "data after eof"
        assert len(data) > 0, "empty data"
        self.events.append(("data", direction, bytes(data)))

    def gap(self, direction: int, nbytes: int, ts_ns: int) -> None:
        assert not self.closed, "gap after close"
        assert direction not in self.eofs, "gap after eof"
        assert 0 < nbytes < 2**31, nbytes
        self.events.append(("gap", direction, nbytes))

    def eof(self, direction: int, ts_ns: int) -> None:
        assert not self.closed, "eof after close"
        assert direction not in self.eofs, "second eof"
        self.eofs.add(direction)
        self.events.append(("eof", direction))

    def close(self, ts_ns: int) -> None:
        assert not self.closed, "second close"
        assert self.eofs == {0, 1} or self.transport == PROTO_UDP, "close before both eofs"
        self.closed = True
        self.events.append(("close",))

    def settled(self) -> bool:
        return False  # these tests follow flows to their end; test_udp_settled covers early closes

    def script(self) -> list[Event]:
        """The events with adjacent data of one direction merged."""
        out: list[Event] = []
        for ev in self.events:
            if ev[0] == "data" and out and out[-1][0] == "data" and out[-1][1] == ev[1]:
                out[-1] = ("data", ev[1], out[-1][2] + ev[2])
            else:
                out.append(ev)
        return out

    def stream(self, direction: int) -> bytes:
        """The bytes delivered in `direction`, gaps shown as one b"?" per lost byte."""
        parts = []
        for ev in self.events:
            if ev[0] == "data" and ev[1] == direction:
                parts.append(ev[2])
            elif ev[0] == "gap" and ev[1] == direction:
                parts.append(b"?" * ev[2])
        return b"".join(parts)


class Harness:
    """A FlowTable with the "http on tcp/80" rule (by default) and a Recorder per flow."""

    def __init__(
        self,
        rules: Iterable[tuple[str, str, Iterable[int]]] = (("http", "tcp", (80,)),),
        config: FlowConfig | None = None,
    ) -> None:
        self.handlers: list[Recorder] = []
        self.table = FlowTable(
            [(p, t, frozenset(ports), None) for p, t, ports in rules], self._new, config or FlowConfig()
        )

    def _new(
        self, protocol: str, client: tuple[str, int], server: tuple[str, int], midstream: bool, transport: int
    ) -> Recorder:
        h = Recorder(protocol, client, server, midstream, transport)
        self.handlers.append(h)
        return h

    def feed(self, *segments: Segment) -> Harness:
        for s in segments:
            self.table.segment(s)
        return self

    @property
    def only(self) -> Recorder:
        assert len(self.handlers) == 1, [h.events[:3] for h in self.handlers]
        return self.handlers[0]

    def stats(self, *names: str) -> dict[str, int]:
        st = self.table.stats
        return {n: getattr(st, n) for n in (names or slot_names(type(st)))}

    def nonzero(self) -> dict[str, int]:
        """The counters that moved (compare with a hand-written dict: an unexpected counter shows up).

        `active` is a gauge, not a counter: tests read it on its own.
        """
        return {k: v for k, v in self.stats().items() if v and k != "active"}


class Conn:
    """Sequence bookkeeping for one hand-written connection: ISNs, and data segments cut where told.

    Offsets are stream offsets (0 = first data byte); `at(d, off)` is the sequence number of that byte.
    """

    def __init__(self, isn: tuple[int, int] = (1000, 5000)) -> None:
        self.isn = isn

    def at(self, d: int, off: int) -> int:
        return (self.isn[d] + 1 + off) & MASK

    def syn(self, ts: int) -> Segment:
        from packetd.net.packet import SYN

        return seg(ts, 0, self.isn[0], 0, SYN)

    def synack(self, ts: int) -> Segment:
        from packetd.net.packet import SYN

        return seg(ts, 1, self.isn[1], self.at(0, 0), SYN | ACK)

    def handshake(self, ts: int) -> list[Segment]:
        return [self.syn(ts), self.synack(ts + 1), seg(ts + 2, 0, self.at(0, 0), self.at(1, 0))]

    def data(self, ts: int, d: int, off: int, payload: bytes, ack_off: int = 0, flags: int = ACK) -> Segment:
        """`payload` at stream offset `off` of direction `d`, acknowledging `ack_off` bytes of the peer."""
        return seg(ts, d, self.at(d, off), self.at(d ^ 1, ack_off), flags, payload)

    def cut(self, ts: int, d: int, data: bytes, cuts: Iterable[int], ack_off: int = 0) -> list[Segment]:
        """`data` cut at the given offsets into consecutive segments (timestamps 1 ns apart)."""
        bounds = [0, *sorted(set(cuts)), len(data)]
        return [
            self.data(ts + i, d, a, data[a:b], ack_off)
            for i, (a, b) in enumerate(itertools.pairwise(bounds))
            if b > a
        ]
