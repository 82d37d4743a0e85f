"""A DNS conversation over UDP that asks once: a handler without a decoder, a matcher or a decoder context.

Most stub resolvers send each query from a new socket (a new client port): each UDP conversation is one
query and its answer, after which the flow table drops the flow (`settled`). A `Session` for it makes a
decoder, its `DecoderContext`, a keyed matcher and the session itself for two datagrams; this handler
stands in for that session and does what it does to the common conversation inline — parse the query
(`parse_message`, with the engine's shared parse store), hold it, parse the answer, check its key and
emit the roundtrip — with the same counters at the same moments (`messages` as each message is
dispatched, `records` as the record is emitted) and the same record (protocol, kind, endpoints, flags,
ordinal 1).

Anything else hands the conversation to a real `Session` in the state the session would have reached
(`Session.resume`: born, its ordinal, the held query pending in both its decoder and its matcher), which
then takes the datagram in question and every later event: a first datagram that does not parse, is an
answer, or comes from the guessed server (a role swap); a second datagram that is not the held query's
answer from the server (a retransmission, another query, a mismatched or unparseable answer); a gap; and
anything after the answer. Its end (expiry, eviction, end of capture) with the query held emits the
`unanswered` record the matcher's close would, itself. So every record, counter and decoder reset is the
session's; tests/pairing/test_dns_udp.py runs both on the same crafted datagrams.

Only the datagram being handed over is parsed twice (once here, once by the session): the parse store
(`decoder.MAX_PARSED`) makes the second a lookup and leaves the store as one parse would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from packetd.pairing.roundtrip import Endpoint, Roundtrip
from packetd.pairing.session import ProtocolStats, RecordSink, Session
from packetd.protocols.base import DecodeError, Kind
from packetd.protocols.dns.decoder import MAX_PARSED, SHARED_PARSED, parse_message
from packetd.protocols.dns.messages import Answer, DnsMessage, Parsed, Query
from packetd.protocols.dns.options import DnsOptions
from packetd.protocols.registry import ProtocolSpec, Registry

_DEFAULT_OPTIONS = DnsOptions()
_FRESH, _ASKED, _ANSWERED = 0, 1, 2
assert MAX_PARSED > 0  # the shared store bounds itself (decoder.parse_message)


class DnsUdpSession:
    """The session of a UDP DNS conversation while it is one query and its answer (module docstring)."""

    __slots__ = (
        "_client",
        "_inner",
        "_max_records",
        "_options_for",
        "_query",
        "_registry",
        "_server",
        "_sink",
        "_spec",
        "_state",
        "_stats",
        "_stats_for",
        "_store",
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
    ) -> None:
        self._spec = spec
        self._registry = registry
        self._client = client
        self._server = server
        self._sink = sink
        self._stats_for = stats_for
        self._options_for = options_for
        self._stats = stats_for(spec.name)  # as Session.__init__: the protocol's stats exist from the flow on
        self._state = _FRESH
        self._query: Query | None = None
        self._inner: Session | None = None  # the session the conversation was handed to
        self._max_records = 0
        self._store: dict[bytes, Parsed] | None = None

    # -- the flow layer's interface ----------------------------------------------------------------------
    def data(self, direction: int, data: memoryview, ts_ns: int) -> None:
        inner = self._inner
        if inner is not None:
            inner.data(direction, data, ts_ns)
            return
        state = self._state
        if state == _FRESH:
            # what Session._birth reads, at the same moment (the first byte)
            opts = self._options_for(self._spec.name)
            self._max_records = (opts if isinstance(opts, DnsOptions) else _DEFAULT_OPTIONS).max_records
            self._store = self._stats.shared.setdefault(SHARED_PARSED, {})
            if direction == 0:
                msg = self._parse(data, ts_ns)
                if isinstance(msg, Query):
                    self._stats.messages += 1
                    self._query = msg
                    self._state = _ASKED
                    return
            self._hand_over(False).data(direction, data, ts_ns)
            return
        query = self._query
        if state == _ASKED and direction == 1 and query is not None:
            msg = self._parse(data, ts_ns)
            if isinstance(msg, Answer) and msg.pair_key == query.pair_key:
                self._stats.messages += 1
                self._query = None
                self._state = _ANSWERED
                self._emit(query.record_kind(), query, msg)
                return
        self._hand_over(state == _ANSWERED).data(direction, data, ts_ns)

    def gap(self, direction: int, nbytes: int, ts_ns: int) -> None:
        inner = self._inner
        if inner is None:
            inner = self._hand_over(self._state == _ANSWERED)
        inner.gap(direction, nbytes, ts_ns)

    def eof(self, direction: int, ts_ns: int) -> None:
        # a UDP decoder has nothing to flush at an end (DnsDecoder.receive_eof)
        inner = self._inner
        if inner is not None:
            inner.eof(direction, ts_ns)

    def close(self, ts_ns: int) -> None:
        inner = self._inner
        if inner is not None:
            inner.close(ts_ns)
            return
        query = self._query
        if query is not None:  # the keyed matcher's close: its pending query is unanswered
            self._query = None
            self._stats.pairing.unanswered += 1
            self._emit(Kind.UNANSWERED, query, None)

    def settled(self) -> bool:
        inner = self._inner
        if inner is not None:
            return inner.settled()
        return self._query is None

    @property
    def protocol(self) -> str:
        return self._spec.name if self._inner is None else self._inner.protocol

    @property
    def decoding(self) -> bool:
        return True if self._inner is None else self._inner.decoding

    # -- internals -------------------------------------------------------------------------------------------
    def _parse(self, data: memoryview, ts_ns: int) -> DnsMessage | None:
        """The datagram's message (DnsDecoder.receive over UDP), None when it does not parse."""
        try:
            return parse_message(data, ts_ns, ts_ns, len(data), 0, "udp", self._max_records, self._store)
        except DecodeError:
            return None

    def _hand_over(self, answered: bool) -> Session:
        """The real session, in the state this conversation reached (module docstring)."""
        inner = Session(
            self._spec,
            self._registry,
            self._client,
            self._server,
            self._sink,
            self._stats_for,
            self._options_for,
            False,
            "udp",
        )
        query = self._query
        if query is not None or answered:
            inner.resume(1 if answered else 0, query, query.pair_key if query is not None else None)
        self._inner = inner
        self._query = None
        return inner

    def _emit(self, kind: str, request: Query, response: Answer | None) -> None:
        """Session._emit for the conversation's one record (no flags: not joined mid-stream, not encrypted)."""
        name = request.PROTOCOL or self._spec.name
        if name == self._spec.name:
            self._stats.records[kind] += 1
        else:
            self._stats_for(name).records[kind] += 1
        self._sink(Roundtrip(name, kind, self._client, self._server, request, response, 0, 1))
