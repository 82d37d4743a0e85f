"""A session drives one connection: its decoder, its matcher, hand-overs, resets, and record emission.

The flow layer calls `data`, `gap`, `eof` and `close` with ordered bytes (it knows nothing of protocols);
the session feeds the decoder, routes what comes out — requests and responses to the matcher, one-way
messages straight to records, control messages to itself — and turns every pairing into a `Roundtrip`.

* DecodeError: counted under the protocol and reason; what the decoder completed before the error
  (`DecodeError.messages`) is dispatched first; the decoder is replaced by a fresh one that
  resynchronises (`midstream=True`), and the matcher is told that framing was lost in that direction.
  After MAX_RESETS errors with no message in between, the connection is not this protocol: decoding stops.
* TLS: the first client bytes of a TCP connection are checked for a ClientHello; if found, a `TlsDecoder`
  reads the hellos into an `encrypted` handshake record and decoding stops. A connection joined mid-stream
  whose first client bytes are a TLS record is marked encrypted without a record.
* Hand-over: an HTTP/1.1 `101` (or an HTTP/2 preface on an HTTP port) gives the connection to the protocol
  registered for the upgrade token, with the upgrade request as its first request; when none is
  registered the 101 answers its request and decoding stops (counted). A CONNECT tunnel that opens with a
  TLS ClientHello is handed to a `TlsDecoder` (target "tls"), as a connection that starts with one; one
  that carries anything else the HTTP/1 decoder does not follow is offered to the detectors
  (protocols/classify.py `TunnelDetector`) and handed to the protocol they name (target `detected:<row>`);
  so is what follows a 101 to a token no row takes over (WebSocket frames: no detector claims them).
* A record's protocol is the rule's, unless its message names another (`Message.PROTOCOL`: one HTTP/2
  connection carries both `grpc` and `http2` streams); records are counted under the protocol they carry.
* `NoAnswer(key)`: the decoder knows the request under `key` will never be answered (HTTP/2 RST_STREAM,
  GOAWAY): the matcher records it `unanswered` at once instead of at connection close.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, Final

from packetd.pairing.matchers import FifoMatcher, KeyedMatcher, Matcher, OneWayMatcher, PairingStats
from packetd.pairing.roundtrip import Endpoint, Roundtrip
from packetd.protocols import tls
from packetd.protocols.base import (
    DecodeError,
    Decoder,
    DecoderContext,
    Direction,
    Flag,
    HandOver,
    Kind,
    Message,
    NoAnswer,
    Role,
    StopDecoding,
    SwapRoles,
    SyncLost,
)
from packetd.protocols.classify import DETECTED, TunnelDetector, classifier
from packetd.protocols.registry import ProtocolSpec, Registry

MAX_RESETS: Final = 8  # consecutive decode errors before a connection is given up as not this protocol
_DIRS = (Direction.C2S, Direction.S2C)
_PAIR_KEY = operator.attrgetter("pair_key")  # the keyed matcher's key of a message (one for all sessions)
_REQUEST, _RESPONSE, _ONEWAY, _UNANSWERED = Role.REQUEST, Role.RESPONSE, Role.ONEWAY, Role.UNANSWERED


def _no_emit(kind: str, request: object, response: object, flags: int) -> None:
    raise AssertionError("a session's matcher is made before its first message")


# The matcher of a session that has seen no byte yet: always empty, so close() and settled() read nothing.
_UNBORN_MATCHER = FifoMatcher(_no_emit, PairingStats())


class ProtocolStats:
    """Per-protocol counters (summed over all its connections)."""

    __slots__ = (
        "counters",
        "decode_errors",
        "encrypted",
        "gap_bytes",
        "gaps",
        "gave_up",
        "handovers",
        "messages",
        "pairing",
        "records",
        "shared",
        "sync_lost",
        "unsupported_upgrades",
    )

    def __init__(self) -> None:
        self.messages = 0
        self.records: dict[str, int] = dict.fromkeys(Kind.ALL, 0)
        self.decode_errors: dict[str, int] = {}
        self.gaps = 0
        self.gap_bytes = 0
        self.sync_lost = 0
        self.handovers = 0
        self.unsupported_upgrades = 0
        self.encrypted = 0
        self.gave_up = 0
        self.pairing = PairingStats()
        # protocol-specific events counted, not recorded: decoders add to it through DecoderContext.counters
        self.counters: dict[str, int] = {}
        self.shared: dict[str, Any] = {}  # cross-connection decoder state (DecoderContext.shared)

    @property
    def resets(self) -> int:
        return sum(self.decode_errors.values())


RecordSink = Callable[[Roundtrip], None]


class Session:
    """Decoder + matcher of one connection (see module docstring)."""

    __slots__ = (
        "_born",
        "_client",
        "_decoder",
        "_errors_in_row",
        "_first_flags",
        "_flags",
        "_flip",
        "_matcher",
        "_midstream",
        "_options_for",
        "_registry",
        "_seq",
        "_server",
        "_sink",
        "_sniff",
        "_spec",
        "_stats",
        "_stats_for",
        "_tls",
        "_transport",
    )

    def __init__(
        self,
        spec: ProtocolSpec,
        registry: Registry,
        client: Endpoint,
        server: Endpoint,
        sink: RecordSink,
        stats_for: Callable[[str], ProtocolStats],
        options_for: Callable[[str], Any],
        midstream: bool,
        transport: str = "tcp",
    ) -> None:
        self._spec = spec
        self._registry = registry
        self._client = client
        self._server = server
        self._sink = sink
        self._stats_for = stats_for
        self._options_for = options_for
        self._stats = stats_for(spec.name)
        self._flip = 0
        self._flags = 0  # flags every later record of this connection carries (encrypted)
        self._first_flags = Flag.MIDSTREAM if midstream else 0  # the first record of a joined connection
        self._errors_in_row = 0
        self._seq = 0  # records emitted on this connection: their ordinal tells apart pipelined exchanges
        self._tls = False
        self._transport = transport
        self._sniff = transport == "tcp"
        # the decoder and matcher (~2.5 KiB for HTTP/1) are made on the first byte or gap (`_birth`): a
        # connection that never carries any (half-open, refused, a SYN flood) costs only this object
        self._midstream = midstream
        self._born = False
        self._matcher: Matcher = _UNBORN_MATCHER
        self._decoder: Decoder | None = None

    def _birth(self) -> None:
        self._born = True
        spec = self._spec
        self._matcher = self._new_matcher(spec)
        stats = self._stats
        # positional (options, midstream, upgrade_request, transport, counters, shared): once per
        # connection, a third of the keyword call's cost
        self._decoder = spec.factory(
            DecoderContext(
                self._options_for(spec.name),
                self._midstream,
                None,
                self._transport,
                stats.counters,
                stats.shared,
            )
        )

    # -- the flow layer's interface ----------------------------------------------------------------------
    def data(self, direction: int, data: memoryview, ts_ns: int) -> None:
        """Ordered bytes of one direction (0: from the client, 1: from the server, as the flow guessed)."""
        decoder = self._decoder
        d = _DIRS[direction ^ self._flip]
        if decoder is not None and not self._sniff:
            # the common case, inline: a connection past its first client bytes (what _feed does)
            try:
                msgs = decoder.receive(d, data, ts_ns)
            except DecodeError as exc:
                self._fail(exc, d, ts_ns)
                return
            if msgs:
                self._errors_in_row = 0
                self._dispatch(msgs, d, ts_ns)
            return
        if decoder is None:
            if self._born:
                return
            self._birth()
        if self._sniff and d is Direction.C2S:
            self._sniff = False
            if tls.starts_client_hello(data):
                self._tls = True
                self._decoder = tls.TlsDecoder()
            elif self._first_flags and tls.looks_like_record(data):
                self._stop(
                    StopDecoding(start_ns=ts_ns, end_ns=ts_ns, size=0, flags=0, reason="tls", encrypted=True)
                )
                return
        self._feed(d, data, ts_ns)

    def gap(self, direction: int, nbytes: int, ts_ns: int) -> None:
        """`nbytes` of this direction were never captured."""
        self._stats.gaps += 1
        self._stats.gap_bytes += nbytes
        if not self._born:
            self._birth()
        decoder = self._decoder
        if decoder is None:
            return
        d = _DIRS[direction ^ self._flip]
        try:
            msgs = decoder.receive_gap(d, nbytes, ts_ns)
        except DecodeError as exc:
            self._fail(exc, d, ts_ns)
            return
        if msgs:
            self._dispatch(msgs, d, ts_ns)

    def eof(self, direction: int, ts_ns: int) -> None:
        """This direction ended (FIN, or the end of the capture)."""
        decoder = self._decoder
        if decoder is None:
            return
        d = _DIRS[direction ^ self._flip]
        try:
            msgs = decoder.receive_eof(d, ts_ns)
        except DecodeError as exc:
            self._fail(exc, d, ts_ns)
            return
        if msgs:
            self._dispatch(msgs, d, ts_ns)

    def close(self, ts_ns: int) -> None:
        """The connection is over: pending requests become `unanswered` records."""
        self._matcher.close()
        self._release()

    def settled(self) -> bool:
        """Every request was answered (a UDP conversation's flow may then go: see FlowTable)."""
        return self._decoder is None or self._matcher.settled()

    def resume(self, seq: int, request: Message | None, key: Any) -> None:
        """Take over a UDP DNS conversation that pairing/dns_udp.py began: born, `seq` records emitted, its
        first message decoded (no role swap), `request` (under the decoder's `key`) pending."""
        self._birth()
        self._seq = seq
        resume = getattr(self._decoder, "resume", None)
        if resume is not None:
            resume(key)
        if request is not None:
            self._matcher.request(request)

    @property
    def protocol(self) -> str:
        return self._spec.name

    @property
    def decoding(self) -> bool:
        return self._decoder is not None

    # -- internals -------------------------------------------------------------------------------------------
    def _feed(self, d: Direction, data: memoryview, ts_ns: int) -> None:
        decoder = self._decoder
        if decoder is None:
            return
        try:
            msgs = decoder.receive(d, data, ts_ns)
        except DecodeError as exc:
            self._fail(exc, d, ts_ns)
            return
        if msgs:
            self._errors_in_row = 0
            self._dispatch(msgs, d, ts_ns)

    def _dispatch(self, msgs: Sequence[Message], d: Direction, ts_ns: int) -> None:
        stats = self._stats
        for m in msgs:
            role = m.ROLE
            if role is _REQUEST:
                stats.messages += 1
                self._matcher.request(m)
            elif role is _RESPONSE:
                stats.messages += 1
                self._matcher.response(m)
            elif role is _ONEWAY:
                stats.messages += 1
                if d is Direction.C2S:
                    self._emit(Kind.ONEWAY, m, None, 0)
                else:
                    self._emit(Kind.ONEWAY, None, m, 0)
            elif role is _UNANSWERED:
                stats.messages += 1
                stats.pairing.unanswered += 1
                self._emit(Kind.UNANSWERED, m, None, 0)
            else:
                self._control(m, ts_ns)
                if self._decoder is None and not isinstance(m, HandOver):
                    return
            stats = self._stats  # a hand-over may have changed the protocol

    def _control(self, m: Message, ts_ns: int) -> None:
        if isinstance(m, SyncLost):
            self._stats.sync_lost += 1
            self._matcher.sync_lost(m.direction)
        elif isinstance(m, NoAnswer):
            self._matcher.no_answer(m.key)
        elif isinstance(m, SwapRoles):
            self._client, self._server = self._server, self._client
            self._flip ^= 1
        elif isinstance(m, StopDecoding):
            self._stop(m)
        elif isinstance(m, HandOver):
            self._hand_over(m, ts_ns)

    def _release(self) -> None:
        """The decoder is let go: keep its counters."""
        counters = getattr(self._decoder, "counters", None)
        if counters and counters is not self._stats.counters:
            total = self._stats.counters
            for key, n in counters.items():
                total[key] = total.get(key, 0) + n
            counters.clear()

    def _stop(self, m: StopDecoding) -> None:
        self._release()
        self._decoder = None
        if m.client_data or m.server_data:  # a tunnel we do not read yet: what does it carry?
            self._detect_inside(m.client_data, m.server_data, m.end_ns)
            return
        if m.encrypted:
            self._stats.encrypted += 1
            self._flags |= Flag.ENCRYPTED

    def _detect_inside(self, client_data: bytes, server_data: bytes, ts_ns: int) -> None:
        """The connection carries another protocol from here: detect it (classify.TunnelDetector)."""
        self._decoder = TunnelDetector(classifier(self._registry, "tcp"))
        if client_data:
            self._feed(Direction.C2S, memoryview(client_data), ts_ns)
        if server_data and self._decoder is not None:
            self._feed(Direction.S2C, memoryview(server_data), ts_ns)

    def _hand_over(self, m: HandOver, ts_ns: int) -> None:
        # the connection has begun (it was decoded up to a switch point): a ClientHello later is not how it
        # started, and the next decoder's matcher may not pair TLS hellos (HTTP/2 pairs by stream id)
        self._sniff = False
        if m.target == "tls":  # a tunnel (HTTP CONNECT) opened with a ClientHello: read the hellos, stop
            self._stats.handovers += 1
            self._release()
            self._tls = True
            self._decoder = tls.TlsDecoder()
            if m.client_data:
                self._feed(Direction.C2S, memoryview(m.client_data), ts_ns)
            if m.server_data:
                self._feed(Direction.S2C, memoryview(m.server_data), ts_ns)
            return
        if m.target.startswith(DETECTED):
            target = self._registry.get(m.target[len(DETECTED) :])
        else:
            target = self._registry.upgrade_target(m.target)
        if target is None:
            self._stats.unsupported_upgrades += 1
            if m.response is not None:
                self._stats.messages += 1
                self._matcher.response(m.response)  # the 101 answers the upgrade request
            self._decoder = None
            if not m.target.startswith(DETECTED):
                # an upgrade to a protocol with no row of its own (or a custom token): what does it carry?
                self._detect_inside(m.client_data, m.server_data, ts_ns)
            return
        self._stats.handovers += 1
        self._release()
        request = self._matcher.pop_oldest() if m.response is not None else None
        self._matcher.close()
        self._spec = target
        self._stats = self._stats_for(target.name)
        self._matcher = self._new_matcher(target)
        self._decoder = target.factory(
            DecoderContext(
                options=self._options_for(target.name),
                upgrade_request=request,
                counters=self._stats.counters,
                shared=self._stats.shared,
            )
        )
        if m.client_data:
            self._feed(Direction.C2S, memoryview(m.client_data), ts_ns)
        if m.server_data:
            self._feed(Direction.S2C, memoryview(m.server_data), ts_ns)

    def _fail(self, exc: DecodeError, d: Direction, ts_ns: int) -> None:
        """A DecodeError: first what the decoder completed before it (`exc.messages`), then the reset."""
        if exc.messages:
            decoder = self._decoder
            self._dispatch(exc.messages, d, ts_ns)
            if self._decoder is not decoder:  # a control message already replaced or stopped it
                errors = self._stats.decode_errors
                errors[exc.reason] = errors.get(exc.reason, 0) + 1
                return
        self._reset(exc, d)

    def _reset(self, exc: DecodeError, d: Direction) -> None:
        errors = self._stats.decode_errors
        errors[exc.reason] = errors.get(exc.reason, 0) + 1
        self._matcher.sync_lost(d)
        self._release()
        self._errors_in_row += 1
        if self._tls or self._errors_in_row >= MAX_RESETS:
            self._stats.gave_up += 1
            self._decoder = None
            return
        # the fresh decoder sees directions through self._flip: roles corrected so far stay corrected
        self._decoder = self._spec.factory(
            DecoderContext(
                options=self._options_for(self._spec.name),
                midstream=True,
                transport=self._transport,
                counters=self._stats.counters,
                shared=self._stats.shared,
            )
        )

    def _new_matcher(self, spec: ProtocolSpec) -> Matcher:
        pairing = self._stats_for(spec.name).pairing
        if spec.pairing == "keyed":
            return KeyedMatcher(self._emit, pairing, _PAIR_KEY)
        if spec.pairing == "oneway":
            return OneWayMatcher(self._emit, pairing)
        return FifoMatcher(self._emit, pairing)

    def _emit(self, kind: str, request: Message | None, response: Message | None, flags: int) -> None:
        flags |= self._flags | self._first_flags
        self._first_flags = 0
        msg = request if request is not None else response
        name = msg.PROTOCOL if msg is not None and msg.PROTOCOL else self._spec.name
        if name == self._spec.name:
            self._stats.records[kind] += 1
        else:  # the message decided the protocol (an HTTP/2 connection carrying gRPC)
            self._stats_for(name).records[kind] += 1
        self._seq += 1
        self._sink(Roundtrip(name, kind, self._client, self._server, request, response, flags, self._seq))
