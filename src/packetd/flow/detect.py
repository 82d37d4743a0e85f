"""The detection stage: a connection no port rule claims is shown to the detectors, then handed on.

A `Detecting` handler stands in for a flow's session while its protocol is unknown. It keeps every event
the flow layer gives it (data, gaps, EOFs, in order) and the first DETECT_WINDOW bytes of each direction,
and after each one asks `classify(c2s, s2c)` (the engine's: every detector of the transport's protocols)
for a winner:

    a protocol name   the winner: its session is made, every kept event is replayed into it in order (no
                      record of the first messages is lost), and the flow's handler becomes that session
    None              someone needs more bytes: keep waiting, up to the bound
    ""                nobody can be it: give up (a connection whose start was seen gives up at once)

The bound (DETECT_SEGMENTS events with data, DETECT_BUFFER kept bytes, or the connection's end) forces a
last decision in which "more" counts as no. A connection nobody claims is dropped from decoding: the flow
layer then spends one table lookup per packet on it (`UNDETECTED`), and it is counted per server port.

Joined mid-stream (no SYN seen), the roles guessed from the ports may be wrong and the first bytes may be
the middle of a message: the detectors are then also asked with the directions swapped, and from each
later segment start of either direction (up to the bound); a swapped winner gets the endpoints swapped,
and this handler stays in front of it to swap the direction of every call. Its records carry `midstream`
as every joined connection's do (the session is made with `midstream` set).

Generic by design: the flow layer knows no protocol; the engine supplies `classify` and the factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from packetd.flow.table import Flow, StreamHandler

# (c2s, s2c) → the winner's row name, None (more bytes needed), "" (nobody)
Classify = Callable[[bytes, bytes], str | None]
# (protocol, client, server, midstream, transport) → the session the connection is handed to
Factory = Callable[[str, tuple[str, int], tuple[str, int], bool, int], "StreamHandler"]

DETECT = "?"  # the protocol a flow is created with when detection decides it (FlowTable._create)
UNDETECTED = "-"  # a flow no detector claimed: no handler, its packets cost one lookup (FlowTable)

DETECT_WINDOW: Final = 512  # bytes of each direction shown to the detectors (protocols/detection.py: why 512)
# Data events kept before a last decision: a handshake's first exchange (TLS hello + reply, MySQL greeting
# + login + OK, PostgreSQL SSLRequest + N + StartupMessage) is done within 8; 16 leaves room for a request
# line cut into small segments. A connection undecided after 16 is not decided by more of the same.
DETECT_SEGMENTS: Final = 16
# Segment starts of each direction tried as message starts on a connection joined mid-stream: each costs
# two runs of every detector per event, so the first few only (the bound keeps a flow from paying more).
MAX_REALIGN: Final = 6
# Payload bytes kept for the replay: the detectors see 512 per direction, but the replay needs every byte;
# 16 KiB per connection while undecided (a loopback TSO segment may be 64 KiB: the one that crosses the
# bound is kept, then the decision is made). 1000 connections in detection at once: ~16 MiB at worst.
DETECT_BUFFER: Final = 16 * 1024
MAX_UNDETECTED_PORTS: Final = 1024  # distinct (transport, server port) counters of undetected connections


class DetectionStats:
    """What detection decided, over all connections."""

    __slots__ = (
        "bound_hits",
        "detected",
        "detected_ports",
        "midstream",
        "ports_overflow",
        "started",
        "swapped",
        "undetected",
        "undetected_ports",
    )

    def __init__(self) -> None:
        self.started = 0  # connections shown to the detectors
        self.detected: dict[str, int] = {}  # protocol → connections handed to it
        # (transport, server port) → the protocol last detected there (at most MAX_UNDETECTED_PORTS keys):
        # what was found where, for the summary and the first-run hint (pipeline/hint.py `found`)
        self.detected_ports: dict[tuple[str, int], str] = {}
        self.undetected = 0  # connections nobody claimed
        # (transport "tcp"/"udp", server port) → undetected connections, at most MAX_UNDETECTED_PORTS keys
        self.undetected_ports: dict[tuple[str, int], int] = {}
        self.ports_overflow = (
            0  # undetected connections on ports beyond the table's bound (counted here only)
        )
        self.bound_hits = 0  # last decisions forced by DETECT_SEGMENTS / DETECT_BUFFER
        self.swapped = 0  # detected with the roles guessed from the ports reversed (joined mid-stream)
        self.midstream = 0  # detected connections joined mid-stream

    def describe(self, limit: int = 5) -> str:
        """One summary line: what was found where (busiest first), or "" when detection saw nothing."""
        if not self.detected and not self.undetected:
            return ""
        found = ", ".join(
            f"{name} {n}" for name, n in sorted(self.detected.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        line = f"packetd: detected by content: {found or 'nothing'}"
        if self.detected_ports:
            shown = sorted(self.detected_ports.items())[:limit]
            more = len(self.detected_ports) - len(shown)
            line += " (on " + ", ".join(f"{t}/{port} {name}" for (t, port), name in shown)
            line += f", {more} more ports)" if more > 0 else ")"
        if self.midstream or self.swapped:
            line += f" ({self.midstream} joined mid-stream, {self.swapped} with client and server swapped)"
        if self.undetected:
            busiest = sorted(self.undetected_ports.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
            where = ", ".join(f"{t}/{port} {n}" for (t, port), n in busiest)
            more = len(self.undetected_ports) - len(busiest)
            line += f"; {self.undetected} connections no protocol claimed ({where}{f', {more} more ports' if more > 0 else ''})"
        return line

    def note_undetected(self, transport: str, port: int) -> None:
        self.undetected += 1
        key = (transport, port)
        ports = self.undetected_ports
        if key in ports or len(ports) < MAX_UNDETECTED_PORTS:
            ports[key] = ports.get(key, 0) + 1
        else:
            self.ports_overflow += 1


class Detection:
    """The classifiers per transport and the factory: one per engine, shared by every `Detecting`."""

    __slots__ = ("classify", "factory", "stats")

    def __init__(self, classify: dict[int, Classify], factory: Factory) -> None:
        self.classify = classify  # by transport number (6, 17)
        self.factory = factory
        self.stats = DetectionStats()


class Detecting:
    """The handler of one flow while its protocol is being detected (see module docstring)."""

    __slots__ = (
        "_bufs",
        "_data_events",
        "_detection",
        "_events",
        "_flip",
        "_flow",
        "_frozen",
        "_given_up",
        "_inner",
        "_kept",
        "_starts",
    )

    def __init__(self, flow: Flow, detection: Detection) -> None:
        detection.stats.started += 1
        self._flow = flow
        self._detection = detection
        self._inner: StreamHandler | None = None  # the winner's session, once decided
        self._flip = 0  # 1: the winner sees the directions swapped
        # made on the first event: a flow that never carries payload (a SYN flood) costs only this object
        # (kind 0 data / 1 gap / 2 eof, direction, bytes, gap size, ts)
        self._events: list[tuple[int, int, bytes, int, int]] | None = None
        self._bufs: tuple[bytearray, bytearray] | None = None  # first DETECT_WINDOW bytes per direction
        self._starts: tuple[list[int], list[int]] | None = None  # offsets in _bufs where segments began
        self._data_events = 0
        self._kept = 0
        self._frozen = 0  # bit per direction: a gap was seen, the window takes no more of its bytes
        self._given_up = False

    # -- the flow layer's interface -------------------------------------------------------------------------
    def data(self, direction: int, data: memoryview, ts_ns: int) -> None:
        inner = self._inner
        if inner is not None:
            inner.data(direction ^ self._flip, data, ts_ns)
            return
        chunk = data.tobytes()
        if not self._keep((0, direction, chunk, 0, ts_ns)):
            return
        assert self._bufs is not None and self._starts is not None
        self._data_events += 1
        self._kept += len(chunk)
        buf = self._bufs[direction]
        room = DETECT_WINDOW - len(buf)
        if room > 0 and not self._frozen >> direction & 1:
            self._starts[direction].append(len(buf))
            buf += chunk[:room]
        bound = self._data_events >= DETECT_SEGMENTS or self._kept >= DETECT_BUFFER
        if bound:
            self._detection.stats.bound_hits += 1
        self._decide(final=bound)

    def gap(self, direction: int, nbytes: int, ts_ns: int) -> None:
        inner = self._inner
        if inner is not None:
            inner.gap(direction ^ self._flip, nbytes, ts_ns)
            return
        if self._keep((1, direction, b"", nbytes, ts_ns)):
            # the bytes after a gap do not follow the ones before: the detectors see no further this way
            self._frozen |= 1 << direction

    def eof(self, direction: int, ts_ns: int) -> None:
        inner = self._inner
        if inner is not None:
            inner.eof(direction ^ self._flip, ts_ns)
            return
        self._keep((2, direction, b"", 0, ts_ns))

    def close(self, ts_ns: int) -> None:
        if self._inner is None and self._events is not None and not self._given_up:
            self._decide(final=True)
        inner = self._inner
        if inner is not None:
            inner.close(ts_ns)

    def settled(self) -> bool:
        inner = self._inner
        return inner.settled() if inner is not None else False

    # -- internals ------------------------------------------------------------------------------------------
    def _keep(self, event: tuple[int, int, bytes, int, int]) -> bool:
        """Keep an event for the replay (False: the flow was given up, nothing is kept)."""
        if self._given_up:
            return False
        if self._events is None:
            self._events = []
            self._bufs = (bytearray(), bytearray())
            self._starts = ([], [])
        self._events.append(event)
        return True

    def _decide(self, final: bool) -> None:
        flow = self._flow
        winner, swapped = self._classify(final)
        if winner is None:
            return
        stats = self._detection.stats
        if not winner:
            self._give_up()
            return
        stats.detected[winner] = stats.detected.get(winner, 0) + 1
        where = ("tcp" if flow.transport == 6 else "udp", (flow.client if swapped else flow.server)[1])
        if where in stats.detected_ports or len(stats.detected_ports) < MAX_UNDETECTED_PORTS:
            stats.detected_ports[where] = winner
        if flow.midstream:
            stats.midstream += 1
        client, server = flow.client, flow.server
        if swapped:
            stats.swapped += 1
            client, server = server, client
            self._flip = 1
        inner = self._detection.factory(winner, client, server, flow.midstream, flow.transport)
        self._inner = inner
        flow.protocol = winner
        if not swapped:
            flow.handler = inner  # later packets skip this stand-in
        events = self._events or []
        self._events = self._bufs = self._starts = None
        flip = self._flip
        for kind, d, chunk, nbytes, ts in events:
            if kind == 0:
                inner.data(d ^ flip, memoryview(chunk), ts)
            elif kind == 1:
                inner.gap(d ^ flip, nbytes, ts)
            else:
                inner.eof(d ^ flip, ts)

    def _classify(self, final: bool) -> tuple[str | None, bool]:
        """(winner, swapped): the winner's name, "" for nobody, None to wait."""
        assert self._bufs is not None and self._starts is not None
        classify = self._detection.classify[self._flow.transport]
        c2s, s2c = bytes(self._bufs[0]), bytes(self._bufs[1])
        result = classify(c2s, s2c)
        waiting = result is None
        if result:
            return result, False
        if self._flow.midstream or self._flow.transport == 17:  # UDP: roles are always a guess
            swapped = classify(s2c, c2s)
            if swapped:
                return swapped, True
            waiting = waiting or swapped is None
            # the first bytes of a joined connection may be the middle of a message: try each later
            # segment start of either direction (bounded: MAX_REALIGN starts)
            for off in self._starts[0][1:MAX_REALIGN]:
                for swap, result in ((False, classify(c2s[off:], s2c)), (True, classify(s2c, c2s[off:]))):
                    if result:
                        return result, swap
                    waiting = waiting or result is None
            for off in self._starts[1][1:MAX_REALIGN]:
                for swap, result in ((False, classify(c2s, s2c[off:])), (True, classify(s2c[off:], c2s))):
                    if result:
                        return result, swap
                    waiting = waiting or result is None
            # a joined connection may show its first message start only later: wait for the bound
            waiting = waiting or self._flow.midstream
        if final:
            return "", False
        return (None if waiting else ""), False

    def _give_up(self) -> None:
        flow = self._flow
        self._events = self._bufs = self._starts = None
        self._given_up = True
        flow.protocol = UNDETECTED
        flow.handler = None
        self._detection.stats.note_undetected("tcp" if flow.transport == 6 else "udp", flow.server[1])
