"""Length-prefixed message framing, shared by the decoders whose messages say their own size (Kafka,
MongoDB), and the varint reader.

Theory of operation. Each direction is a `FrameSide`: it reads the fixed-size head that carries the
message's length (Kafka: a 4-byte size; MongoDB: the 16-byte header), then the body. The first `keep`
bytes of a body are kept for parsing (the protocol's `max_parse_bytes`), the rest only counted, so a
100 MB Fetch response costs no memory. A body that arrives whole in one segment is sliced out of it
without a copy into the side's buffer.

    +------ head (HEAD.size bytes) ------+------------- body (body_length(head) bytes) -------------+
    | length, ... (the protocol's)       | kept: min(body, _keep_limit) bytes | counted, not kept   |

On a gap: inside the counted tail of a body, framing survives (the message is flagged `gap`); anywhere
else the side loses sync and resynchronises on the next plausible message start (`find`, bounded by
MAX_RESYNC_SCAN bytes, then a DecodeError), flagging the message found `gap` (or `midstream` when the
connection was joined mid-stream).

A decoder subclasses `LengthPrefixed` and says what is protocol-specific: the head's layout (`HEAD`), its
validation (`body_length`, raising DecodeError), how much to keep (`_keep_limit`), where a message may
start (`find`), and what a complete message is (`message`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import ClassVar, Final

from packetd.protocols.base import NO_MESSAGES, DecodeError, Direction, Flag, Message

# bytes searched for a message start after a gap before the connection is declared lost: a few segments'
# worth of a bulk transfer, so a connection that is not what its rule says costs a bounded scan
MAX_RESYNC_SCAN: Final = 4 * 1024 * 1024


class Short(Exception):
    """The kept bytes end inside a field (the message was cut at max_parse_bytes, or truncated)."""


def uvarint(buf: bytes, p: int, end: int) -> tuple[int, int]:
    """An unsigned LEB128 varint at `p` (Kafka's flexible versions, protobuf) → (value, next offset).
    Raises Short when the bytes end inside it, DecodeError when it is longer than 64 bits."""
    if p + 1 < end:
        # one or two bytes (< 16384): Kafka's callers read the one-byte case inline, so the two-byte one
        # (a record's length, a compact length of 127-16382) is what reaches here most
        b = buf[p]
        if b < 0x80:
            return b, p + 1
        c = buf[p + 1]
        if c < 0x80:
            return (b & 0x7F) | (c << 7), p + 2
    shift = value = 0
    while True:
        if p >= end:
            raise Short
        b = buf[p]
        p += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, p
        shift += 7
        if shift > 63:
            raise DecodeError("bad varint")


def zigzag_varint(buf: bytes, p: int, end: int) -> tuple[int, int]:
    """A zig-zag signed varint (Kafka record fields) → (value, next offset)."""
    if p < end and buf[p] < 0x80:  # one byte (record attributes, small deltas): no second call
        value = buf[p]
        return (value >> 1) ^ -(value & 1), p + 1
    value, p = uvarint(buf, p, end)
    return (value >> 1) ^ -(value & 1), p


class FrameSide:
    """One direction's framing state."""

    __slots__ = ("buf", "flags", "head", "keep", "remaining", "scanned", "start_ns", "synced")

    def __init__(self, synced: bool) -> None:
        self.synced = synced
        self.buf = bytearray()  # the head while it is incomplete, then the kept part of the body
        self.head: tuple[int, ...] | None = None  # the current message's head once it is read
        self.keep = 0  # body bytes still to keep
        self.remaining = 0  # body bytes still to come (kept or counted)
        self.start_ns = -1
        self.flags = 0
        self.scanned = 0  # bytes searched for a message start since sync was lost


class LengthPrefixed:
    """receive / receive_gap / receive_eof for length-prefixed messages (see the module docstring)."""

    HEAD: ClassVar[struct.Struct]
    _sides: tuple[FrameSide, FrameSide]
    _keep_limit: int  # body bytes kept for parsing (the protocol's max_parse_bytes); the rest is counted

    # -- what the protocol says ----------------------------------------------------------------------------
    def body_length(self, head: tuple[int, ...]) -> int:
        """The body's length from a head; DecodeError when the head is not the protocol's."""
        raise NotImplementedError

    def find(self, direction: Direction, chunk: bytes) -> tuple[int, int]:
        """(offset of the first plausible message start or -1, offset from which bytes must be kept)."""
        raise NotImplementedError

    def message(
        self, direction: Direction, head: tuple[int, ...], body: bytes, start: int, ts: int, flags: int
    ) -> Message:
        """The message of a head and its kept body (`len(body) < body_length(head)`: cut at _keep_limit)."""
        raise NotImplementedError

    def resynced(self) -> None:
        """Called when a side found a message start after losing sync."""

    # -- the Decoder interface -----------------------------------------------------------------------------
    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        side = self._sides[direction]
        if not side.synced:
            return self._resync(direction, side, data, ts_ns)
        n = len(data)
        head_size = self.HEAD.size
        if side.head is None and not side.buf and n >= head_size:
            # one whole message (a response, most of the time): no loop, no buffering
            head = self.HEAD.unpack_from(data, 0)
            length = self.body_length(head)
            if head_size + length == n and length <= self._keep_limit:
                flags = side.flags
                side.flags = 0
                side.start_ns = -1
                return [self.message(direction, head, data[head_size:].tobytes(), ts_ns, ts_ns, flags)]
        out: list[Message] = []
        pos = 0
        while pos < n:
            if side.head is None and not side.buf:
                # whole messages in a row (a client's pipelined requests): each sliced out without a copy
                # into the side's buffer, the side's fields untouched until one is cut by the segment's end
                pos = self._whole(direction, side, data, pos, ts_ns, out)
                if pos >= n:
                    break
            if side.head is None:
                buf = side.buf
                if not buf:
                    side.start_ns = ts_ns
                if not buf and n - pos >= head_size:
                    head = self.HEAD.unpack_from(data, pos)
                    pos += head_size
                else:
                    take = min(head_size - len(buf), n - pos)
                    buf += data[pos : pos + take]
                    pos += take
                    if len(buf) < head_size:
                        break
                    head = self.HEAD.unpack_from(buf, 0)
                    buf.clear()
                side.remaining = self.body_length(head)
                side.head = head
                side.keep = min(side.remaining, self._keep_limit)
                if side.remaining == 0:
                    self._emit(direction, side, b"", ts_ns, out)
                    continue
            # body: keep the first `keep` bytes, count the rest
            avail = n - pos
            if not side.buf and side.keep == side.remaining and avail >= side.remaining:
                body = data[pos : pos + side.remaining].tobytes()  # the whole body in this segment
                pos += side.remaining
                side.remaining = 0
                self._emit(direction, side, body, ts_ns, out)
                continue
            if side.keep:
                take = min(side.keep, avail)
                side.buf += data[pos : pos + take]
                side.keep -= take
                side.remaining -= take
                pos += take
                avail -= take
            skip = min(side.remaining - side.keep, avail)
            side.remaining -= skip
            pos += skip
            if side.remaining == 0:
                body = bytes(side.buf)
                side.buf.clear()
                self._emit(direction, side, body, ts_ns, out)
        return out

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]:
        side = self._sides[direction]
        if side.head is not None and side.keep == 0 and nbytes <= side.remaining:
            side.remaining -= nbytes  # inside the counted tail of a body: framing survives
            side.flags |= Flag.GAP
            return NO_MESSAGES
        side.buf.clear()
        side.head = None
        side.synced = False
        side.scanned = 0
        side.flags = Flag.GAP
        return NO_MESSAGES

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]:
        side = self._sides[direction]
        side.buf.clear()
        side.head = None
        return NO_MESSAGES

    # -- inside ----------------------------------------------------------------------------------------------
    def _whole(self, direction: Direction, side: FrameSide, data: memoryview, pos: int, ts: int,
               out: list[Message]) -> int:  # fmt: skip
        """The whole messages (head and a body within `_keep_limit`) from `pos` on: the offset after them."""
        n = len(data)
        unpack = self.HEAD.unpack_from
        head_size = self.HEAD.size
        limit = self._keep_limit
        body_length = self.body_length
        message = self.message
        while n - pos >= head_size:
            head = unpack(data, pos)
            length = body_length(head)
            start = pos + head_size
            end = start + length
            if end > n or length > limit:
                break  # read again by the general path, which keeps or counts what this segment has
            flags = side.flags
            if flags:
                side.flags = 0
            out.append(message(direction, head, data[start:end].tobytes(), ts, ts, flags))
            pos = end
        return pos

    def _emit(self, direction: Direction, side: FrameSide, body: bytes, ts: int, out: list[Message]) -> None:
        head = side.head
        assert head is not None
        side.head = None
        start = side.start_ns if side.start_ns >= 0 else ts
        flags = side.flags
        side.flags = 0
        side.start_ns = -1
        out.append(self.message(direction, head, body, start, ts, flags))

    def _resync(self, direction: Direction, side: FrameSide, data: memoryview, ts: int) -> Sequence[Message]:
        chunk = bytes(side.buf) + data.tobytes()
        side.buf.clear()
        start, keep = self.find(direction, chunk)
        if start < 0:
            side.scanned += keep
            if side.scanned > MAX_RESYNC_SCAN:
                raise DecodeError("no message start found")
            side.buf += chunk[keep:]
            return NO_MESSAGES
        side.synced = True
        side.scanned = 0
        side.flags |= Flag.GAP if side.flags & Flag.GAP else Flag.MIDSTREAM
        self.resynced()
        return self.receive(direction, memoryview(chunk)[start:], ts)


__all__ = ["MAX_RESYNC_SCAN", "FrameSide", "LengthPrefixed", "Short", "uvarint", "zigzag_varint"]
