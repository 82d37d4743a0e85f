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

from collections import deque
from collections.abc import Iterator, Sequence
from enum import IntEnum
from typing import Any, ClassVar, Generic, Protocol, TypeVar

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
        return None

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

_T = TypeVar("_T")


class Untracked:
    """A run of requests, in the pending order, that were not tracked because the bound was hit.

    `answers` is what is still due to them (a reply each for Redis and MySQL, the ReadyForQuery that ends
    each of their cycles for PostgreSQL); their answers are dropped as they come, so no later request is
    paired with them. `open`: the run ends inside an answer unit (a PostgreSQL cycle not yet ended by its
    Sync): tracking may resume only after it is closed. `codes`: what the decoder needs to frame each
    untracked answer (MySQL: the command byte), one byte per request.
    """

    __slots__ = ("answers", "codes", "open", "requests")

    def __init__(self) -> None:
        self.answers = 0
        self.requests = 0
        self.open = False
        self.codes = bytearray()


class PendingQueue(Generic[_T]):
    """The requests of one connection waiting for their answers, in the order the answers will come.

    Overflow rule (one rule for every in-order pairing): at most `limit` requests are tracked. A request
    that arrives while `limit` are tracked is not tracked — it is counted (`refused`) and never becomes a
    record — but its place in the order is kept in an `Untracked` run (an integer, or a byte per request
    where framing needs one), so that its answer is recognised and dropped (counted: `dropped`) instead of
    being paired with the next tracked request. Dropping the oldest request instead would shift every
    later pairing by one, silently. Tracking resumes as soon as there is room (and no run is open).
    """

    # hot path (every request and response of every in-order connection): while no run is queued, which is
    # always short of the bound, each operation is one deque operation and one integer test
    __slots__ = ("_q", "_runs", "dropped", "limit", "refused")

    def __init__(self, limit: int = MAX_PENDING) -> None:
        self._q: deque[_T | Untracked] = deque()
        self._runs = 0  # Untracked runs in the queue
        self.limit = limit
        self.refused = 0  # requests not tracked because `limit` were
        self.dropped = 0  # answers to untracked requests, dropped

    def push(self, item: _T, answers: int = 1, code: int = -1, open_: bool = False) -> bool:
        """Track `item` (True), or, at the bound, count it into the tail run (False). The keywords say
        what the untracked request is owed: `answers` (0 for a PostgreSQL message inside a cycle), the
        `code` byte its answer is framed by (-1: none needed), whether it leaves its run `open_`."""
        q = self._q
        runs = self._runs
        if not runs:
            if len(q) < self.limit:
                q.append(item)
                return True
            run = None
        else:
            tail = q[-1]
            run = tail if isinstance(tail, Untracked) else None
            if len(q) - runs < self.limit and (run is None or not run.open):
                q.append(item)
                return True
        if run is None:
            run = Untracked()
            q.append(run)
            self._runs += 1
        run.requests += 1
        run.answers += answers
        run.open = open_
        if code >= 0:
            run.codes.append(code)
        self.refused += 1
        return False

    def tail_run(self) -> Untracked | None:
        """The untracked run at the end of the queue, if the last request was not tracked."""
        if not self._runs:
            return None
        tail = self._q[-1]
        return tail if isinstance(tail, Untracked) else None

    def peek(self) -> _T | None:
        """The oldest request when it is tracked; None when nothing is pending or its answer is owed to an
        untracked run (see `untracked_due`)."""
        q = self._q
        if not q:
            return None
        head = q[0]
        if self._runs and isinstance(head, Untracked):
            return None
        return head  # type: ignore[return-value]  # not an Untracked: no run, or checked

    def untracked_due(self) -> Untracked | None:
        """The untracked run whose answers come next, if any."""
        if not self._runs:
            return None
        head = self._q[0] if self._q else None
        return head if isinstance(head, Untracked) else None

    def drop_answer(self) -> None:
        """One answer owed to the untracked run at the head came: drop it (counted)."""
        run = self._q[0]
        if not isinstance(run, Untracked):
            raise ValueError("drop_answer: the oldest request is tracked")
        self.dropped += 1
        run.answers -= 1
        if run.codes:
            del run.codes[0]
        if run.answers <= 0 and not run.open:
            self._q.popleft()
            self._runs -= 1

    def popleft(self) -> _T:
        """Remove the oldest request (it must be tracked: check with `peek`)."""
        item = self._q.popleft()
        if self._runs and isinstance(item, Untracked):
            self._q.appendleft(item)
            raise ValueError("popleft: the oldest request is not tracked")
        return item  # type: ignore[return-value]  # not an Untracked: no run, or checked

    def clear(self) -> None:
        self._q.clear()
        self._runs = 0

    @property
    def tracked(self) -> int:
        return len(self._q) - self._runs

    def __len__(self) -> int:
        """Tracked requests plus untracked runs: 0 when nothing more is expected."""
        return len(self._q)

    def __bool__(self) -> bool:
        return bool(self._q)

    def __iter__(self) -> Iterator[_T]:
        """The tracked requests, oldest first."""
        if not self._runs:
            return iter(self._q)  # type: ignore[arg-type]  # no run: only requests
        return (item for item in self._q if not isinstance(item, Untracked))
