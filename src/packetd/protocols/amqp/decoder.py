"""AMQP 0-9-1 decoder (RabbitMQ flavour), both directions of one connection.

Theory of operation
-------------------
Each direction is a stream of frames after the client's 8-byte protocol header. A frame's payload is either
buffered (method and content-header frames: small, bounded by MAX_FRAME_BUFFER) or, for content-body
frames, counted straight from the segment and never copied. A method that carries content (Basic.Publish,
Deliver, Return, Get-Ok) becomes a message once its content header and all body bytes have arrived.

Pairing is decided here, where both directions are in hand, and handed to the keyed matcher as a
`pair_key` that both messages of a pair carry:

* a synchronous request (spec "synchronous" methods, both directions: the server sends Connection.Start,
  Tune, Secure and may send Channel.Flow or a Close) waits in a per-(channel, sender) queue; the first
  reply of the right kind from the other side on that channel answers it, in order;
* a Close (Channel.Close or Connection.Close) whose class-id/method-id name a pending request from the
  other side is that request's error response (a 404 on a passive declare, a refused vhost on
  Connection.Open), and the Close-Ok that follows is absorbed; any other Close is a request of its own;
* Basic.Publish on a channel in confirm mode (after Confirm.Select) gets the channel's next delivery tag and
  is answered by the broker's Basic.Ack or Basic.Nack for that tag (`multiple` answers every earlier one
  too); without confirms it is `oneway`;
* Basic.Deliver, Basic.Return and Connection.Blocked/Unblocked are `oneway` records from the broker; the
  consumer's Basic.Ack/Nack/Reject are counted by outcome (counters `consumer_ack`, `consumer_nack`,
  `consumer_reject`), heartbeats are counted (`heartbeats`), neither is a record.
* a method sent with no-wait expects no reply: it is `oneway`.

Joining mid-stream (or after a gap): a side searches its bytes for a frame start — a method frame of a
known class and method, or a heartbeat, whose frame-end octet is where its size says — and discards what
precedes it (at most MAX_RESYNC_SCAN bytes, then a DecodeError). Content frames whose method was not seen
are skipped.

Wire format (AMQP 0-9-1 §4.2.3, §4.2.6):

    protocol header:  'A' 'M' 'Q' 'P' 0 0 9 1
    frame:            type(8) channel(16) size(32) payload(size) 0xCE
    method payload:   class-id(16) method-id(16) arguments...
    content header:   class-id(16) weight(16)=0 body-size(64) property-flags(16)... properties...
    body payload:     opaque bytes; the bodies of one message add up to body-size
    heartbeat:        type 8, channel 0, size 0
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from typing import Any, Final

from packetd.protocols.amqp.messages import AmqpMethod, Content, Oneway, Request, Response
from packetd.protocols.amqp.options import AmqpOptions
from packetd.protocols.amqp.spec import (
    BASIC_PROPERTIES,
    CONTENT,
    METHODS,
    REPLIES,
    REPLY_TO,
    read_args,
    read_table,
)
from packetd.protocols.base import (
    MAX_PENDING,
    NO_MESSAGES,
    DecodeError,
    DecoderContext,
    Direction,
    Flag,
    Message,
)
from packetd.protocols.pending import PendingQueue
from packetd.protocols.traceparent import parse_traceparent

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END: Final = 0xCE
# a method or content-header frame; RabbitMQ's default frame_max is 128 KiB
MAX_FRAME_BUFFER: Final = 1024 * 1024
MAX_FRAME_SIZE: Final = 0x7FFFFFFF  # frame sizes above 2^31-1 are not AMQP (the reference's bound)
MAX_CHANNELS: Final = 2048  # channels tracked per connection (RabbitMQ's default channel_max)
# bytes searched for a frame start before giving up on the connection
MAX_RESYNC_SCAN: Final = 4 * 1024 * 1024
# distinct content-header property blocks remembered per connection (publishers repeat theirs; one with a
# per-message id or timestamp only misses: the cache is cleared when full, one dict of small bytes keys)
MAX_PROPERTY_CACHE: Final = 64

_HEADER = struct.Struct("!BHI")
_METHOD_ID = struct.Struct("!HH")
_CONTENT_HEADER = struct.Struct("!HHQH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")

_CLOSES = frozenset({(10, 50), (20, 40)})
_CLOSE_OKS = frozenset({(10, 51), (20, 41)})
_CONSUMER_OUTCOME = {(60, 80): "consumer_ack", (60, 120): "consumer_nack", (60, 90): "consumer_reject"}
_PUBLISH, _ACK, _NACK = (60, 40), (60, 80), (60, 120)
_CONFIRM_SELECT, _CONFIRM_SELECT_OK, _CHANNEL_OPEN = (85, 10), (85, 11), (20, 10)


class _Channel:
    """Per-channel state: the message whose content is being collected, confirm mode."""

    __slots__ = ("closing", "confirms", "content", "next_tag", "unconfirmed")

    def __init__(self) -> None:
        self.content: list[Any] | None = (
            None  # [method, args, start_ns, size, flags, body_size, body_seen, props]
        )
        self.confirms = False
        self.next_tag = 1
        self.unconfirmed: dict[int, object] = {}  # delivery tag → pair key (insertion order = tag order)
        self.closing = [
            False,
            False,
        ]  # per sender: a Close-Ok from it is absorbed (its peer's Close answered)


class _Side:
    __slots__ = ("body_channel", "body_left", "buf", "flags", "header", "scanned", "start_ns", "synced")

    def __init__(self, synced: bool) -> None:
        self.synced = synced
        self.header = True  # the protocol header may come first (client) or not at all
        self.buf = bytearray()  # partial frame (header and payload of a method/content-header frame)
        self.body_left = -1  # >= 0: inside a body frame with this many payload bytes (+ frame end) left
        self.body_channel = 0
        self.start_ns = -1
        self.flags = 0
        self.scanned = 0


class AmqpDecoder:
    """Decoder for one AMQP 0-9-1 connection (see module docstring)."""

    def __init__(self, ctx: DecoderContext | None = None) -> None:
        ctx = ctx or DecoderContext()
        self._opts = ctx.options if isinstance(ctx.options, AmqpOptions) else AmqpOptions()
        self._counters: dict[str, int] = ctx.counters if ctx.counters is not None else {}
        synced = not ctx.midstream
        self._sides = (_Side(synced), _Side(synced))
        self._channels: dict[int, _Channel] = {}
        # (channel, sender direction) → pending synchronous requests: (pair key, method). At most MAX_PENDING
        # are tracked on all channels together (unanswered synchronous requests and, per channel, unconfirmed
        # publishes); beyond it a request is refused by the overflow rule of PendingQueue: not recorded,
        # counted (`pending_refused`), its answer dropped (`pending_dropped`), the oldest kept
        self._pending: dict[tuple[int, int], PendingQueue[tuple[object, tuple[int, int]]]] = {}
        self._npending = 0
        self._seq = 0
        # content-header property bytes → what they come to (see _properties); bounded, cleared when full
        self._props_cache: dict[bytes, tuple[Any, ...]] = {}

    # -- the Decoder interface ---------------------------------------------------------------------------
    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        side = self._sides[direction]
        out: list[Message] = []
        pos = 0
        n = len(data)
        if side.header:
            # 'A' cannot start a frame (types are 1, 2, 3, 8): it starts the protocol header (§4.2.2)
            if side.buf or (n and data[0] == 0x41):
                take = min(8 - len(side.buf), n)
                side.buf += data[:take]
                pos = take
                if len(side.buf) < 8:
                    return out
                head = bytes(side.buf)
                side.buf.clear()
                if head != PROTOCOL_HEADER:
                    raise DecodeError("unsupported protocol header", head[4:].hex())
                side.synced = True
            side.header = False
        if not side.synced:
            return self._resync(direction, side, data, ts_ns)
        while pos < n:
            if side.body_left >= 0:
                pos = self._body(direction, side, data, pos, ts_ns, out)
                continue
            buf = side.buf
            if not buf and n - pos >= 7:
                ftype, channel, size = _HEADER.unpack_from(data, pos)
                if ftype == 3:
                    self._check_size(size)
                    side.start_ns = ts_ns
                    side.body_left = size
                    side.body_channel = channel
                    pos += 7
                    continue
                if n - pos >= 8 + size:
                    if data[pos + 7 + size] != FRAME_END:
                        raise DecodeError("bad frame end")
                    payload = data[pos + 7 : pos + 7 + size].tobytes()
                    pos += 8 + size
                    self._frame(direction, ftype, channel, payload, ts_ns, ts_ns, size + 8, out)
                    continue
                self._check_size(size)
                side.start_ns = ts_ns
            elif not buf:
                side.start_ns = ts_ns
            # a partial frame: collect it (the header first, then the payload)
            if len(buf) < 7:
                take = min(7 - len(buf), n - pos)
                buf += data[pos : pos + take]
                pos += take
                if len(buf) < 7:
                    break
                ftype, channel, size = _HEADER.unpack_from(buf, 0)
                if ftype == 3:
                    self._check_size(size)
                    buf.clear()
                    side.body_left = size
                    side.body_channel = channel
                    continue
                if ftype != 1 and ftype != 2 and ftype != 8:
                    raise DecodeError("bad frame type", str(ftype))
                if size + 8 > MAX_FRAME_BUFFER:
                    raise DecodeError("frame too large to buffer")
            ftype, channel, size = _HEADER.unpack_from(buf, 0)
            take = min(8 + size - len(buf), n - pos)
            buf += data[pos : pos + take]
            pos += take
            if len(buf) < 8 + size:
                break
            if buf[-1] != FRAME_END:
                raise DecodeError("bad frame end")
            payload = bytes(buf[7:-1])
            buf.clear()
            self._frame(direction, ftype, channel, payload, side.start_ns, ts_ns, size + 8, out)
        return out

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]:
        side = self._sides[direction]
        if side.body_left >= 0 and nbytes <= side.body_left:
            # inside a body frame: framing survives; the message it belongs to is flagged
            side.body_left -= nbytes
            ch = self._channels.get(side.body_channel)
            if ch is not None and ch.content is not None:
                ch.content[6] += nbytes
                ch.content[3] += nbytes
                ch.content[4] |= Flag.GAP
            return NO_MESSAGES
        side.buf.clear()
        side.body_left = -1
        side.synced = False
        side.scanned = 0
        side.flags = Flag.GAP
        for ch in self._channels.values():
            ch.content = None  # content of either side may straddle the hole: drop what is in progress
        return NO_MESSAGES

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]:
        side = self._sides[direction]
        side.buf.clear()
        side.body_left = -1
        return NO_MESSAGES

    # -- framing helpers -------------------------------------------------------------------------------------
    @staticmethod
    def _check_size(size: int) -> None:
        if size > MAX_FRAME_SIZE:
            raise DecodeError("frame too large")

    def _body(
        self, direction: Direction, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]
    ) -> int:
        """Count body-frame payload bytes from the segment (never copied); then the frame end."""
        n = len(data)
        left = side.body_left
        take = min(left, n - pos)
        ch = self._channels.get(side.body_channel)
        content = ch.content if ch is not None else None
        if content is not None:
            content[6] += take
            content[3] += take
        side.body_left = left - take
        pos += take
        if side.body_left or pos >= n:
            return pos
        if data[pos] != FRAME_END:
            raise DecodeError("bad frame end")
        side.body_left = -1
        if content is not None:
            content[3] += 8
            if 0 <= content[5] <= content[6]:
                assert ch is not None
                ch.content = None
                self._complete(direction, side.body_channel, content, ts, out)
        return pos + 1

    def _resync(self, direction: Direction, side: _Side, data: memoryview, ts: int) -> Sequence[Message]:
        """Find the next frame start (see module docstring), then decode from there."""
        chunk = bytes(side.buf) + data.tobytes()
        side.buf.clear()
        start, keep = _find_frame(chunk)
        if start < 0:
            side.scanned += keep
            if side.scanned > MAX_RESYNC_SCAN:
                raise DecodeError("no frame start found")
            side.buf += chunk[keep:]  # may hold the start of a frame whose end has not arrived yet
            return NO_MESSAGES
        side.synced = True
        side.scanned = 0
        side.header = False
        side.flags |= Flag.GAP if side.flags & Flag.GAP else Flag.MIDSTREAM
        return self.receive(direction, memoryview(chunk)[start:], ts)

    def _channel(self, channel: int) -> _Channel:
        ch = self._channels.get(channel)
        if ch is None:
            if len(self._channels) >= MAX_CHANNELS:
                del self._channels[next(iter(self._channels))]
            ch = self._channels[channel] = _Channel()
        return ch

    # -- frames ------------------------------------------------------------------------------------------------
    def _frame(
        self,
        direction: Direction,
        ftype: int,
        channel: int,
        payload: bytes,
        start: int,
        end: int,
        size: int,
        out: list[Message],
    ) -> None:
        if ftype == 1:
            if len(payload) < 4:
                raise DecodeError("short method frame")
            key = _METHOD_ID.unpack_from(payload, 0)
            spec = METHODS.get(key)
            if spec is None:
                raise DecodeError("unknown method", f"{key[0]}.{key[1]}")
            args = read_args(payload, 4, len(payload), spec[1])
            if key in CONTENT:
                ch = self._channel(channel)
                flags = self._sides[direction].flags
                self._sides[direction].flags = 0
                # [method, args, start_ns, size, flags, body_size, body_seen, properties]
                ch.content = [key, args, start, size, flags, -1, 0, None]
                return
            flags = self._sides[direction].flags
            self._sides[direction].flags = 0
            self._method(direction, channel, key, args, None, None, start, end, size, flags, out)
        elif ftype == 2:
            chan = self._channels.get(channel)
            if chan is None or chan.content is None or chan.content[5] >= 0:
                return  # the content of a method not seen (joined mid-stream): skipped
            if len(payload) < 14:
                raise DecodeError("short content header")
            _cls, _weight, body_size, _flags = _CONTENT_HEADER.unpack_from(payload, 0)
            content = chan.content
            content[5] = body_size
            content[7] = payload
            content[3] += size
            if body_size == 0:
                chan.content = None
                self._complete(direction, channel, content, end, out)
        elif ftype == 8:
            self._counters["heartbeats"] = self._counters.get("heartbeats", 0) + 1
        else:
            raise DecodeError("bad frame type", str(ftype))

    def _complete(
        self, direction: Direction, channel: int, content: list[Any], end: int, out: list[Message]
    ) -> None:
        """A content-carrying method is whole: read the properties the record needs, then dispatch it."""
        key, args, start, size, flags, body_size, _seen, props = content
        c, trace = self._properties(props, body_size)
        self._method(direction, channel, key, args, c, trace, start, end, size, flags, out)

    def _properties(self, header: bytes, body_size: int) -> tuple[Content, Any]:
        """Basic properties (property flags may continue over several 16-bit words: bit 0 set).

        A publisher usually sends the same properties with every message (content type, delivery mode,
        the same headers): what they come to is kept by their bytes (`MAX_PROPERTY_CACHE`) and read once."""
        props = header[12:]  # after class id, weight and body size
        cache = self._props_cache
        hit = cache.get(props)
        if hit is None:
            hit = self._read_properties(header)
            if len(cache) >= MAX_PROPERTY_CACHE:
                cache.clear()
            cache[props] = hit
        content_type, delivery_mode, message_id, correlation_id, trace = hit
        return Content(body_size, content_type, delivery_mode, message_id, correlation_id), trace

    def _read_properties(self, header: bytes) -> tuple[Any, ...]:
        """(content type, delivery mode, message id, correlation id, trace context) of a content header."""
        pos = 12
        flags = 0
        words = 0
        while True:
            if pos + 2 > len(header):
                raise DecodeError("bad property flags")
            (word,) = _U16.unpack_from(header, pos)
            pos += 2
            flags |= (word & 0xFFFE) << (16 * words)
            words += 1
            if not word & 1:
                break
            if words > 4:
                raise DecodeError("bad property flags")
        present = []
        bit = 15
        for name, kind in BASIC_PROPERTIES:
            if flags >> bit & 1:
                present.append((name, kind))
            bit -= 1
        props = read_args(header, pos, len(header), tuple(present)) if present else {}
        trace = None
        headers = props.get("headers")
        if headers and self._opts.traceparent:
            tp = headers.get("traceparent")
            if isinstance(tp, str):
                ts = headers.get("tracestate")
                trace = parse_traceparent(
                    tp.encode("latin-1", "replace"),
                    ts.encode("latin-1", "replace") if isinstance(ts, str) else None,
                )
        return (
            props.get("content_type"),
            props.get("delivery_mode"),
            props.get("message_id"),
            props.get("correlation_id"),
            trace,
        )

    # -- methods: roles and pairing ------------------------------------------------------------------------
    def _method(
        self,
        direction: Direction,
        channel: int,
        key: tuple[int, int],
        args: dict[str, Any],
        content: Content | None,
        trace: Any,
        start: int,
        end: int,
        size: int,
        flags: int,
        out: list[Message],
    ) -> None:
        reply_code = args.pop("reply_code", 0)
        reply_text = args.pop("reply_text", "")
        if key in REPLIES:
            if key in _CLOSES and self._close_answers(
                direction, channel, args, start, end, size, flags, reply_code, reply_text, out
            ):
                return
            if key == _CHANNEL_OPEN:
                self._channels.pop(channel, None)  # a new channel with this number starts afresh
            if key == _CONFIRM_SELECT and args.get("no_wait"):
                self._channel(channel).confirms = True
            if args.get("no_wait"):
                out.append(
                    Oneway(
                        start,
                        end,
                        size,
                        flags,
                        channel,
                        key,
                        args,
                        content,
                        trace,
                        None,
                        reply_code,
                        reply_text,
                    )
                )
                return
            self._seq += 1
            pk: object = ("s", self._seq)
            q = self._pending.get((channel, direction))
            if q is None:
                q = self._pending[(channel, direction)] = PendingQueue(MAX_PENDING)
            if self._npending >= MAX_PENDING:
                q.refuse()
                self._counters["pending_refused"] = self._counters.get("pending_refused", 0) + 1
                return
            q.push((pk, key))
            self._npending += 1
            out.append(
                Request(
                    start, end, size, flags, channel, key, args, content, trace, pk, reply_code, reply_text
                )
            )
            return
        request = REPLY_TO.get(key)
        if request is not None:
            if key in _CLOSE_OKS:
                ch = self._channels.get(channel)
                if ch is not None and ch.closing[direction]:
                    ch.closing[direction] = False
                    self._counters["close_ok_after_error"] = self._counters.get("close_ok_after_error", 0) + 1
                    if key == (20, 41):
                        self._channels.pop(channel, None)
                    return
            pk = self._answer(channel, 1 - direction, request)
            if pk is None:  # the answer of a request beyond the bound: dropped, as it was
                self._counters["pending_dropped"] = self._counters.get("pending_dropped", 0) + 1
                return
            if key == _CONFIRM_SELECT_OK:
                self._channel(channel).confirms = True
            elif key == (20, 41):
                self._channels.pop(channel, None)  # the channel is closed: its confirm state goes
            out.append(
                Response(
                    start, end, size, flags, channel, key, args, content, trace, pk, reply_code, reply_text
                )
            )
            return
        if key == _PUBLISH:
            ch = self._channel(channel)
            if ch.confirms:
                tag = ch.next_tag
                ch.next_tag = tag + 1
                pk = ("p", channel, tag)
                if len(ch.unconfirmed) >= MAX_PENDING:
                    del ch.unconfirmed[next(iter(ch.unconfirmed))]
                ch.unconfirmed[tag] = pk
                out.append(Request(start, end, size, flags, channel, key, args, content, trace, pk))
                return
            out.append(Oneway(start, end, size, flags, channel, key, args, content, trace, None))
            return
        if (key == _ACK or key == _NACK) and direction is Direction.S2C:
            self._confirm(channel, key, args, start, end, size, flags, out)
            return
        outcome = _CONSUMER_OUTCOME.get(key)
        if outcome is not None:
            self._counters[outcome] = self._counters.get(outcome, 0) + 1
            return
        # Deliver, Return, Blocked, Unblocked, Recover-Async: one-way by protocol
        out.append(
            Oneway(start, end, size, flags, channel, key, args, content, trace, None, reply_code, reply_text)
        )

    def _answer(self, channel: int, requester: int, request: tuple[int, int]) -> object | None:
        """The pair key of the oldest pending `request` from `requester` on `channel` (or one that pairs
        nothing); None when the answer is owed to a request that was not tracked (beyond the bound)."""
        q = self._pending.get((channel, requester))
        if q:
            if q.untracked_due() is not None:
                q.drop_answer()
                return None
            pk = self._take(q, request)
            if pk is not None:
                return pk
        self._seq += 1
        return ("orphan", self._seq)

    def _take(
        self, q: PendingQueue[tuple[object, tuple[int, int]]], method: tuple[int, int]
    ) -> object | None:
        """Remove the oldest pending `method` from `q`: its pair key, or None when none is pending."""
        item = q.take_first(lambda pending: pending[1] == method)
        if item is None:
            return None
        self._npending -= 1
        return item[0]

    def _close_answers(
        self,
        direction: Direction,
        channel: int,
        args: dict[str, Any],
        start: int,
        end: int,
        size: int,
        flags: int,
        reply_code: int,
        reply_text: str,
        out: list[Message],
    ) -> bool:
        """A Close naming a pending request of the peer (class-id/method-id) is that request's error answer."""
        failed = (args.get("class_id", 0), args.get("method_id", 0))
        peer = 1 - direction
        channels = [channel] if channel else [channel, *(c for c, d in self._pending if d == peer and c)]
        for c in channels:
            q = self._pending.get((c, peer))
            pk = self._take(q, failed) if q else None
            if pk is None:
                continue
            self._channel(channel).closing[peer] = True
            key = (10, 50) if channel == 0 else (20, 40)
            out.append(
                Response(start, end, size, flags, channel, key, args, None, None, pk, reply_code, reply_text)
            )
            return True
        return False

    def _confirm(
        self,
        channel: int,
        key: tuple[int, int],
        args: dict[str, Any],
        start: int,
        end: int,
        size: int,
        flags: int,
        out: list[Message],
    ) -> None:
        """A broker Ack/Nack answers the publish with its delivery tag, or every one up to it (`multiple`)."""
        ch = self._channels.get(channel)
        tag = args.get("delivery_tag", 0)
        unconfirmed = ch.unconfirmed if ch is not None and ch.confirms else {}  # not in confirm mode: orphan
        if args.get("multiple"):
            tags = [t for t in unconfirmed if tag == 0 or t <= tag]  # tag 0 with multiple: all outstanding
        else:
            tags = [tag] if tag in unconfirmed else []
        if not tags:
            self._seq += 1
            out.append(
                Response(start, end, size, flags, channel, key, args, None, None, ("orphan", self._seq))
            )
            return
        for t in tags:
            pk = unconfirmed.pop(t)
            # one Ack confirming several publishes answers each of them; its wire size is counted once
            out.append(
                Response(start, end, size if t == tags[-1] else 0, flags, channel, key, args, None, None, pk)
            )


_CANDIDATE = re.compile(rb"[\x01\x08]")
_HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"


def _find_frame(chunk: bytes) -> tuple[int, int]:
    """(offset of the first plausible frame start or -1, offset from which bytes must be kept)."""
    n = len(chunk)
    keep = max(0, n - 10)
    for m in _CANDIDATE.finditer(chunk):
        i = m.start()
        if chunk[i] == 8:
            if chunk[i : i + 8] == _HEARTBEAT:
                return i, 0
            if n - i < 8 and _HEARTBEAT.startswith(chunk[i:]):
                keep = min(keep, i)
            continue
        if i + 11 > n:
            keep = min(keep, i)
            break
        _t, _channel, size = _HEADER.unpack_from(chunk, i)
        if _METHOD_ID.unpack_from(chunk, i + 7) not in METHODS or not 4 <= size <= MAX_FRAME_BUFFER:
            continue
        if i + 8 + size > n:
            keep = min(keep, i)  # may be a frame whose end is still to come
            continue
        if chunk[i + 7 + size] == FRAME_END:
            return i, 0
    return -1, keep


def new_decoder(ctx: DecoderContext) -> AmqpDecoder:
    """Registry factory."""
    return AmqpDecoder(ctx)


__all__ = ["AmqpDecoder", "AmqpMethod", "AmqpOptions", "new_decoder", "read_table"]
