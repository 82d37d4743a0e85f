"""The seams every protocol decoder plugs into: `Decoder`, `Message`, `DecodeError`, flags and context.

A decoder is sans-I/O (STYLE.md): one object per connection sees both directions of ordered bytes, and
returns complete messages. It never reads a clock or a socket; time arrives as `ts_ns`, the capture time of
the packet that carried the bytes. Anything malformed raises `DecodeError(reason)`; the session catches it,
counts it under the protocol and reason, and replaces the decoder with a fresh one that resynchronises on
the next message start. Any other exception escaping a decoder is a bug.

Control messages (`HandOver`, `StopDecoding`, `NoAnswer`, ...) travel in the same result lists as protocol
messages: they tell the session to give the connection to another decoder (HTTP/1.1 `101 Switching
Protocols`, an HTTP/2 preface on an HTTP port), to stop decoding it (TLS negotiated, an unknown upgrade), or
that a request will never be answered (an HTTP/2 stream reset).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import IntEnum
from typing import Any, ClassVar, Protocol, TypeVar

from packetd._values import value


class Direction(IntEnum):
    """Who sent the bytes: the client (towards the server) or the server (towards the client)."""

    C2S = 0
    S2C = 1


class Role(IntEnum):
    """How the pairing layer treats a message."""

    REQUEST = 0  # expects a response
    RESPONSE = 1  # answers the oldest (FIFO) or the same-keyed (keyed) request
    ONEWAY = 2  # expects no answer by protocol: becomes a `oneway` record at once
    CONTROL = 3  # not a protocol message: an instruction to the session
    UNANSWERED = 4  # a request the decoder knows will never be answered (PostgreSQL: skipped after an error)


class Kind:
    """Record kinds of the record contract (ARCHITECTURE.md)."""

    ROUNDTRIP = "roundtrip"
    HANDSHAKE = "handshake"
    ONEWAY = "oneway"
    UNANSWERED = "unanswered"
    ALL = (ROUNDTRIP, HANDSHAKE, ONEWAY, UNANSWERED)


class Flag:
    """Quality flags, a bit each. Messages and roundtrips carry the OR of their flags."""

    GAP = 1  # bytes were lost in capture inside or just before this message
    MIDSTREAM = 2  # the connection was joined after it started, or the decoder skipped bytes to resync
    TRUNCATED = 4  # the message ended before its declared length (connection closed, end of capture)
    RETRANSMITTED = 8  # retransmitted segments were seen for this message
    ENCRYPTED = 16  # the connection is encrypted (TLS): nothing beyond the handshake was decoded
    MALFORMED = 32  # the message broke its protocol's syntax but was still framed (HTTP/1 request lines)

    NAMES: ClassVar[tuple[tuple[int, str], ...]] = (
        (1, "gap"),
        (2, "midstream"),
        (4, "truncated"),
        (8, "retransmitted"),
        (16, "encrypted"),
        (32, "malformed"),
    )


_FLAG_LISTS: dict[int, list[str]] = {}


def flag_names(flags: int) -> list[str]:
    """The contract's list form of a flag bitmask (cached: there are only 64 combinations)."""
    names = _FLAG_LISTS.get(flags)
    if names is None:
        names = [name for bit, name in Flag.NAMES if flags & bit]
        _FLAG_LISTS[flags] = names
    return list(names)


_State = TypeVar("_State", bound=IntEnum)
_Event = TypeVar("_Event", bound=IntEnum)


def transition(table: Mapping[_State, Mapping[_Event, _State]], state: _State, event: _Event) -> _State:
    """The state after `event` in a decoder's transition table (h11's `_state.py` style: every change of a
    connection's phase is a row of one table); DecodeError for a pair the table does not have."""
    nxt = table[state].get(event)
    if nxt is None:
        raise DecodeError("unexpected message for the connection's phase", f"{event.name} in {state.name}")
    return nxt


def endpoint_text(ep: tuple[str, int]) -> str:
    """`addr:port`, the address in brackets when it is IPv6 (`[::1]:80`)."""
    addr, port = ep
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class DecodeError(Exception):
    """The peer sent something this decoder cannot frame. `reason` is a short, stable, countable label.

    `messages`: what the decoder completed before it failed (a decoder may attach them so that a reset
    does not lose them: HTTP/2 holds requests until their streams end); the session dispatches them first.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.messages: Sequence[Message] = ()


@value
class TraceContext:
    """A W3C trace context carried on the wire (`traceparent` / `tracestate`)."""

    trace_id: str  # 32 lower-case hex digits
    parent_span_id: str  # 16 lower-case hex digits
    sampled: bool
    tracestate: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "parent_span_id": self.parent_span_id,
            "tracestate": self.tracestate,
        }


@value
class Message:
    """Base of every protocol message: first and last byte times, wire size, quality flags."""

    ROLE: ClassVar[Role] = Role.REQUEST
    # the record's protocol when the message decides it (one decoder serving HTTP/2 and gRPC: the stream's
    # content-type decides); "" — the protocol of the rule that matched the connection
    PROTOCOL: ClassVar[str] = ""
    start_ns: int
    end_ns: int
    size: int  # bytes on the wire, headers included
    flags: int  # Flag bits

    # -- semantics: protocols override what applies to them ------------------------------------------
    def operation(self) -> str:
        """What was asked (requests): HTTP method, Redis command, ..."""
        return ""

    def status(self) -> str:
        """How it ended (responses): HTTP status code, "OK", an error code."""
        return "OK"

    def is_error(self) -> bool:
        """True when the response is an error by the protocol's own rules."""
        return False

    def record_kind(self) -> str:
        """`roundtrip` for queries, `handshake` for connection set-up exchanges."""
        return Kind.ROUNDTRIP

    def trace_context(self) -> TraceContext | None:
        """The W3C trace context the message carries; a class that can carry one overrides this."""
        return None

    # True when the class overrides trace_context (set for every subclass below): the record's envelope
    # skips the call otherwise. Almost no message carries a trace, every record asked both of its messages,
    # and a call of an interpreted method from compiled code costs ~5x reading a class attribute.
    TRACED: ClassVar[bool] = False

    def __init_subclass__(cls) -> None:  # (no super(): dataclass's slotted copy breaks its __class__ cell)
        cls.TRACED = cls.trace_context is not Message.trace_context

    def to_json(self) -> dict[str, Any]:
        """The protocol's own fields for the record's `request` / `response` object (snake_case)."""
        return {"size": self.size}


@value
class HandOver(Message):
    """Give the connection to another protocol's decoder (HTTP/1.1 101 → h2c, an HTTP/2 preface).

    `target` is an upgrade token or protocol hint ("h2c", "websocket", "http2-prior-knowledge").
    `client_data` / `server_data` are the bytes each side sent after the switch point, to be fed to the
    next decoder. `response` is the message that switched (the 101), if any: it answers the upgrade request
    when no registered decoder takes the connection over.
    """

    ROLE: ClassVar[Role] = Role.CONTROL
    target: str
    client_data: bytes = b""
    server_data: bytes = b""
    response: Message | None = None


@value
class StopDecoding(Message):
    """Stop decoding this connection: what follows is encrypted, tunnelled or otherwise opaque."""

    ROLE: ClassVar[Role] = Role.CONTROL
    reason: str
    encrypted: bool = False
    # a tunnel the decoder does not read (HTTP CONNECT): the bytes each side sent into it so far, for the
    # session to detect what it carries (protocols/classify.py)
    client_data: bytes = b""
    server_data: bytes = b""


@value
class NoAnswer(Message):
    """The request paired under `key` will never be answered (HTTP/2 RST_STREAM, GOAWAY): record it now
    as `unanswered` instead of holding it until the connection closes."""

    ROLE: ClassVar[Role] = Role.CONTROL
    key: object


@value
class SyncLost(Message):
    """The decoder lost message framing in `direction` (a gap it could not absorb, or a reset).

    Whole messages may have vanished: the matcher must not pair what comes next with what came before
    (an HTTP response lost in a gap would otherwise shift every later pairing by one).
    """

    ROLE: ClassVar[Role] = Role.CONTROL
    direction: Direction


@value
class SwapRoles(Message):
    """The content shows the guessed client is the server (both ports matched a rule, no SYN seen).

    The decoder has already re-labelled its own state; the session swaps the endpoints and the direction
    labels of everything it delivers from now on.
    """

    ROLE: ClassVar[Role] = Role.CONTROL


@value
class DecoderContext:
    """What a decoder is told when it is created."""

    options: Any = None  # the protocol's own options object (None: defaults)
    midstream: bool = False  # the connection was joined after it started, or this is a reset after an error
    upgrade_request: Message | None = None  # HTTP/1.1 request that asked for the upgrade being handed over
    transport: str = "tcp"  # "udp": every receive() call is exactly one datagram
    # the protocol's named counters (AMQP heartbeats, consumer acks by outcome): a decoder adds to them for
    # events that are counted rather than recorded; None when the caller keeps no statistics
    counters: dict[str, int] | None = None
    # state shared by every connection of the protocol in one engine (Kafka topic id → name from Metadata
    # responses); the decoder that uses it bounds it
    shared: dict[str, Any] | None = None


class Decoder(Protocol):
    """One per connection; both directions. Returns complete messages, never partial ones.

    A decoder may also have a `counters: dict[str, int]` attribute (bounded tables hit, cache misses...):
    the session adds it to the protocol's `ProtocolStats.counters` when it lets the decoder go.
    """

    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]: ...

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]: ...

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]: ...


NO_MESSAGES: Sequence[Message] = ()

# Requests in flight per connection that are tracked for pairing: the one bound of the pending queues of
# the FIFO matcher and of the Redis, MySQL and PostgreSQL decoders (PostgreSQL counts frontend messages).
# Redis's own documentation names 10 000 commands a reasonable pipelining depth; redis-py, lettuce and
# psycopg/libpq pipelines reach it. Memory per tracked entry, measured with tracemalloc
# (bench/bench_pending.py, CPython 3.11, request record + decoder state + statement text): Redis GET 177 B,
# MySQL COM_QUERY 264 B, PostgreSQL 142 B per frontend message: 1.4-2.6 MB for a connection at the bound.
MAX_PENDING = 10_000
