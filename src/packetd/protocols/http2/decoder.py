"""HTTP/2 decoder (RFC 9113, HPACK RFC 7541), both directions of one connection; also the gRPC decoder.

Theory of operation
-------------------
Each direction is a `_Side`: a frame reader (states PREFACE → HEADER → PAYLOAD | DATA | SKIP → HEADER ...,
or UNSYNCED while searching for a frame boundary) and its own HPACK decoder (`hpack` library), since each
peer's encoder keeps its own dynamic table (RFC 7541 §2.2). A header block is reassembled from HEADERS (or
PUSH_PROMISE) + CONTINUATION frames, however the segments cut them, and decoded exactly once, in order: the
dynamic table is a function of every block before it, so no block is ever skipped or decoded twice.

Streams live in one table, each with a request half (client) and a response half (server). A half ends at
END_STREAM, on HEADERS or on DATA: body-less requests and responses (GET, 204, trailers-only) end on
their header block. The first header block of a half is its headers (1xx responses are interim and
folded into `interim`), the next one its trailers. A stream becomes messages when its response half ends,
when it is reset (RST_STREAM), when a GOAWAY says it was never processed, or when the connection ends; the
request is held until then so that a reset can be reported on it. A server's reset before any response
header block makes the request `unanswered` at once (a `NoAnswer` control message), carrying the error
code. A client's reset may cross a response the server had already sent (a capture near the client sees
the RST first): the stream is held (bounded, `RESET_GRACE_NS` of capture time, or until the server answers a
stream opened after the reset) so that the response still pairs, the record saying `reset_by: client`.

DATA payload is never copied: it is counted, and on gRPC streams walked for the 5-byte prefix of each
length-prefixed message (gRPC PROTOCOL-HTTP2.md) to count messages per direction.

Speed: HPACK decoding is pure Python (the `hpack` library) and was most of the cost per call. Peers send
the same block bytes for every call once their fields are indexed, so each direction reuses decoded blocks
while the dynamic table's change counter is unchanged (`MAX_BLOCK_CACHE`); a block that changes the table
is always decoded.

Joining mid-connection: the frame reader searches for a chain of plausible frame headers; the HPACK
decoders start with an empty dynamic table that is marked unknown (`_TolerantTable`). A reference to an
entry inserted before the capture resolves to a placeholder that is dropped from the record, and the
message is flagged `midstream`; entries inserted after the join are known exactly (they are always the
newest, RFC 7541 §2.3.3), so nothing is ever attributed to the wrong header. Static-table references and
literals decode as usual. Losing a header block (a capture gap) puts its side back into that state.

What it deliberately ignores: flow control and priorities (frames are counted and skipped), stream state
validation beyond what framing needs, content codings, SETTINGS other than HEADER_TABLE_SIZE.

Wire format (RFC 9113 §3.4, §4.1, §6):

    client preface  "PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n" (24 octets), then a SETTINGS frame
    frame           +-----------------------------------------------+
                    |                 Length (24)                   |
                    +---------------+---------------+---------------+
                    |   Type (8)    |   Flags (8)   |
                    +-+-------------+---------------+-------------------------------+
                    |R|                 Stream Identifier (31)                      |
                    +=+=============================================================+
                    |                   Frame Payload (Length octets)             ...
    DATA (0)        [Pad Length (8)] Data [Padding]                     END_STREAM 0x1, PADDED 0x8
    HEADERS (1)     [Pad Length (8)] [E(1) Stream Dependency (31) Weight (8)] Field Block Fragment
                    [Padding]                      END_STREAM 0x1, END_HEADERS 0x4, PADDED 0x8, PRIORITY 0x20
    PRIORITY (2)    5 octets             RST_STREAM (3)  Error Code (32)
    SETTINGS (4)    (Identifier (16) Value (32))*, ACK 0x1
    PUSH_PROMISE (5) [Pad Length] R Promised Stream ID (31) Field Block Fragment [Padding]
    PING (6)        8 octets             GOAWAY (7)  R Last-Stream-ID (31) Error Code (32) Debug Data
    WINDOW_UPDATE (8) R Increment (31)   CONTINUATION (9) Field Block Fragment, END_HEADERS 0x4
    gRPC message    Compressed-Flag (8) Message-Length (32) Message   (inside DATA, any framing)
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Final

import hpack
from hpack.table import HeaderTable

from packetd.protocols.base import (
    NO_MESSAGES,
    DecodeError,
    DecoderContext,
    Direction,
    Flag,
    Message,
    NoAnswer,
    SwapRoles,
    SyncLost,
)
from packetd.protocols.http1.messages import Request as Http1Request
from packetd.protocols.http2.fields import Fields, field_value
from packetd.protocols.http2.messages import GrpcRequest, GrpcResponse, Http2Request, Http2Response
from packetd.protocols.http2.options import Http2Options
from packetd.protocols.traceparent import parse_traceparent

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4
# A header block (compressed, across HEADERS + CONTINUATION). Servers refuse far less: nghttp2 and Go cap the
# decoded header list at 64 KiB by default; a block larger than this is an attack, not a request.
MAX_HEADER_BLOCK = 256 * 1024
MAX_HEADER_LIST: Final = 256 * 1024  # decoded size of one header list (hpack's RFC 7541 §4.1 accounting)
# The largest HPACK dynamic table accepted from SETTINGS or a size update: memory per direction. Real stacks
# use 4 KiB (default) to 64 KiB.
MAX_HPACK_TABLE: Final = 1024 * 1024
# bytes kept of a control frame: SETTINGS, PING, RST_STREAM, WINDOW_UPDATE are far smaller; only GOAWAY's
# debug data (which no record shows) is longer, and skipped
MAX_CONTROL_PAYLOAD: Final = 4096
# Open streams per connection. Servers advertise SETTINGS_MAX_CONCURRENT_STREAMS of 100-250 (grpc-go and
# nghttp2 100, Go net/http 250); the oldest stream is evicted past this (its request flagged truncated).
MAX_STREAMS = 1024
# offsets tried for a frame boundary per segment while joining mid-connection
MAX_RESYNC_SCAN: Final = 64 * 1024
# bytes skipped looking for a frame boundary before giving up (DecodeError)
MAX_RESYNC_SKIP: Final = 16 * 1024 * 1024
# A stream the client reset before any response was seen is held this long (capture time) before it is
# declared unanswered: a capture near the client sees the RST_STREAM before a response the server had
# already sent (both are on the wire, crossing); one round trip brings that response. 1 s covers WAN round
# trips. A server frame for a stream the client opened after the reset ends the wait at once (the server
# read the RST before it, and TCP keeps the server's frames in order).
RESET_GRACE_NS: Final = 1_000_000_000
# such streams held per connection (cancellation bursts); the oldest is let go first
MAX_HELD_RESETS: Final = 128
MAX_INTERIM: Final = 8  # 1xx responses kept per stream (more: dropped, the response flagged truncated)
# Trailer fields kept per stream half. One trailer block is the protocol; more blocks (malformed, RFC 9113
# §8.1) are appended up to this many fields, then dropped and the message flagged truncated.
MAX_TRAILER_FIELDS = 256
# Decoded header blocks kept per direction for reuse. In steady state a client and a server send the same
# block bytes again and again (all indexed: `:method POST`, the path, `grpc-status: 0`); while the dynamic
# table is unchanged the same bytes decode to the same fields, and pure-Python HPACK decoding is the
# single largest cost per call. Cleared when full.
MAX_BLOCK_CACHE: Final = 512

# frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    range(10)
)
# flags
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_HEADER_TABLE_SIZE: Final = 0x1

_HDR = struct.Struct(">IBI")  # (length << 8 | type), flags, R + stream id
_U32 = struct.Struct(">I")
_GOAWAY = struct.Struct(">II")
_SETTING = struct.Struct(">HI")
# valid flag bits per known type, and whether the type lives on stream 0 (True), on a stream (False)
_FLAG_MASK = (0x09, 0x2D, 0, 0, 0x01, 0x0C, 0x01, 0, 0, 0x04)
_ON_ZERO = (False, False, False, False, True, False, True, True, None, False)  # WINDOW_UPDATE: either
_FIXED_LEN = {PRIORITY: 5, RST_STREAM: 4, PING: 8, WINDOW_UPDATE: 4}

# where a frame header may start: any 3 length bytes, a known type (0-9), any flags, the R bit clear
_CANDIDATE = re.compile(rb"(?=[\x00-\xff]{3}[\x00-\x09][\x00-\xff][\x00-\x7f])", re.S)
_UNKNOWN_NAME = b"\x00packetd-unknown"  # placeholder for a dynamic-table entry inserted before the capture
_UNKNOWN = (_UNKNOWN_NAME, b"")


class State(IntEnum):
    PREFACE = 0
    HEADER = 1
    PAYLOAD = 2
    DATA = 3
    SKIP = 4
    UNSYNCED = 5


class _TolerantTable(HeaderTable):
    """An HPACK table whose older entries may be unknown (the capture joined after they were inserted).

    While `unknown` is set, a dynamic index past the entries we saw inserted resolves to a placeholder and
    counts a miss instead of raising: the entries we know are the newest, so they keep their indices.
    """

    def __init__(self, unknown: bool) -> None:
        super().__init__()
        self.unknown = unknown
        self.misses = 0
        self.gen = 0  # bumped on every change: a decoded block is reusable while it stays the same

    def add(self, name: bytes, value: bytes) -> None:
        super().add(name, value)
        self.gen += 1

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]
        self.gen += 1

    def get_by_index(self, index: int) -> tuple[bytes, bytes]:
        try:
            return super().get_by_index(index)
        except hpack.InvalidTableIndex:
            if not self.unknown or index <= HeaderTable.STATIC_TABLE_LENGTH:
                raise
            self.misses += 1
            return _UNKNOWN

    def forget(self) -> None:
        """A header block was lost: what we knew of the dynamic table may be shifted; start over."""
        self.dynamic_entries.clear()
        self._current_size = 0
        self.unknown = True
        self.gen += 1


class _Half:
    """One direction of one stream: the request (client) or the response (server) under construction."""

    __slots__ = (
        "body_bytes",
        "compressed",
        "end_ns",
        "ended",
        "flags",
        "grpc",
        "header_bytes",
        "headers",
        "interim",
        "msg_bytes",
        "msg_left",
        "msgs",
        "pfx",
        "pseudo",
        "sensitive",
        "start_ns",
        "trailers",
        "wire",
    )

    def __init__(self) -> None:
        self.start_ns = -1
        self.end_ns = -1
        self.wire = 0
        self.header_bytes = 0
        self.body_bytes = 0
        self.headers: Fields | None = None
        self.pseudo: dict[bytes, bytes] = {}
        self.trailers: Fields | None = None
        self.interim: list[int] = []
        self.ended = False
        self.flags = 0
        self.grpc = False  # count gRPC length-prefixed messages in DATA
        self.msgs = 0
        self.msg_bytes = 0
        self.compressed = 0
        self.msg_left = 0
        self.pfx = b""
        self.sensitive: frozenset[bytes] = frozenset()


class _Stream:
    __slots__ = ("goaway", "halves", "pushed", "reset", "reset_by", "sid")

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.halves = (_Half(), _Half())  # request, response
        self.reset: int | None = None
        self.reset_by: str | None = None
        self.goaway: int | None = None
        self.pushed = False


class _Side:
    """One direction's frame reader and HPACK decoder."""

    __slots__ = (
        "block",
        "block_bytes",
        "block_end",
        "block_promised",
        "block_sid",
        "block_wire",
        "buf",
        "cache",
        "data_left",
        "eof",
        "fflags",
        "flen",
        "fresh",
        "fsid",
        "fstart",
        "ftype",
        "half",
        "hpack",
        "is_client",
        "keep",
        "need_pad",
        "pending_table",
        "remaining",
        "skipped",
        "state",
        "table",
    )

    def __init__(self, is_client: bool, synced: bool) -> None:
        self.is_client = is_client
        self.state = State.UNSYNCED if not synced else (State.PREFACE if is_client else State.HEADER)
        self.buf = bytearray()  # partial frame header, buffered payload, or resync tail
        self.ftype = self.fflags = self.fsid = self.flen = 0
        self.fstart = 0
        self.remaining = 0
        self.keep = 0
        self.need_pad = False
        self.data_left = 0
        self.half: _Half | None = None  # the stream half the current DATA frame belongs to
        self.block = bytearray()
        self.block_sid = 0  # stream of the open header block (0: none)
        self.block_end = False  # END_STREAM was on the HEADERS that opened the block
        self.block_promised = 0  # promised stream id when the block came in a PUSH_PROMISE
        self.block_wire = 0  # frame bytes of the open header block
        self.block_bytes = 0  # header block fragment bytes
        self.skipped = 0
        self.eof = False
        self.fresh = not synced  # just joined or resynced: a leading CONTINUATION is skipped
        self.pending_table = -1  # SETTINGS_HEADER_TABLE_SIZE this side announced, not yet acknowledged
        self.table = _TolerantTable(unknown=not synced)
        # block bytes → (table generation, pseudo-headers, regular fields, never-indexed names)
        self.cache: dict[bytes, tuple[int, dict[bytes, bytes], Fields, tuple[bytes, ...]]] = {}
        self.hpack = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST)
        self.hpack.header_table = self.table
        self.hpack.max_allowed_table_size = 4096 if synced else MAX_HPACK_TABLE


def _ctype_grpc(fields: Fields | None) -> bool | None:
    """True/False from a content-type field; None when the block carried none we could read."""
    if fields:
        for name, v in fields:
            if name == b"content-type":
                return v.startswith(b"application/grpc")
    return None


class Http2Decoder:
    """Decoder for one HTTP/2 connection (see module docstring)."""

    def __init__(self, ctx: DecoderContext | None = None, default_protocol: str = "http2") -> None:
        ctx = ctx or DecoderContext()
        opts = ctx.options if isinstance(ctx.options, Http2Options) else Http2Options()
        self._redact = opts.redact
        self._redact_query = opts.redact_query
        self._default_grpc = default_protocol == "grpc"
        synced = not ctx.midstream
        self._sides = [_Side(True, synced), _Side(False, synced)]
        self._streams: dict[int, _Stream] = {}
        self._max_client_sid = 0
        self._produced = False  # roles can only be swapped before the first message
        self._goaway: int | None = None
        self.evicted_streams = 0  # streams pushed out by MAX_STREAMS
        # streams reset by the client before any response: sid -> (deadline, highest client stream id then)
        self._held: dict[int, tuple[int, int]] = {}
        self.held_resets_evicted = 0  # held streams let go early by MAX_HELD_RESETS
        up = ctx.upgrade_request
        if isinstance(up, Http1Request):
            self._adopt_upgrade(up)

    # -- the Decoder interface ---------------------------------------------------------------------------
    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        out: list[Message] = []
        side = self._sides[direction]
        pos = 0
        n = len(data)
        handlers = _HANDLERS
        if self._held:
            self._release_held(ts_ns, out, deadline=ts_ns)
        try:
            while pos < n:  # `side` stays the bytes' own side even if the roles are swapped meanwhile
                pos = handlers[side.state](self, side, data, pos, ts_ns, out)
        except DecodeError as exc:
            self._salvage(exc, ts_ns, out)
            raise
        return out

    def _salvage(self, exc: DecodeError, ts: int, out: list[Message]) -> None:
        """The session will replace this decoder: hand it what was complete, and every open stream's request
        (a response the next decoder reads still pairs with it by stream id) and partial response."""
        for st in list(self._streams.values()):
            self._finish(st, ts, out, truncated=True)
        exc.messages = out

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]:
        side = self._sides[direction]
        state = side.state
        if state is State.DATA and not side.need_pad and nbytes <= side.remaining:
            # inside one DATA frame: framing survives; the body count moves on, message counting stops
            half = side.half
            data_part = min(nbytes, side.data_left)
            side.data_left -= data_part
            side.remaining -= nbytes
            if half is not None:
                half.body_bytes += data_part
                half.flags |= Flag.GAP
                half.grpc = False
            out: list[Message] = []
            if side.remaining == 0:
                self._data_done(side, ts_ns, out)
            return out
        if state is State.SKIP and nbytes <= side.remaining:
            side.remaining -= nbytes
            if side.remaining == 0:
                side.state = State.HEADER
            return NO_MESSAGES
        # frame boundaries (and maybe a header block) are lost: resynchronise, forget the dynamic table
        if state is State.DATA and side.half is not None:
            side.half.flags |= Flag.GAP
        self._lose_sync(side)
        i = 0 if side.is_client else 1
        for st in self._streams.values():
            half = st.halves[i]
            if not half.ended:  # its later frames may be what was lost; a finished half lost nothing
                half.flags |= Flag.GAP
        return [SyncLost(start_ns=ts_ns, end_ns=ts_ns, size=0, flags=0, direction=direction)]

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]:
        side = self._sides[direction]
        side.eof = True
        out: list[Message] = []
        if not side.is_client or (self._sides[0].eof and self._sides[1].eof):
            # the server is gone: no stream can be answered any more
            for st in list(self._streams.values()):
                self._finish(st, ts_ns, out, truncated=True)
        return out

    # -- frame reader states --------------------------------------------------------------------------------
    def _on_preface(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        buf = side.buf
        take = data[pos : pos + len(PREFACE) - len(buf)].tobytes()
        buf += take
        if not PREFACE.startswith(bytes(buf)):
            raise DecodeError("bad connection preface")
        if len(buf) == len(PREFACE):
            buf.clear()
            side.state = State.HEADER
        return pos + len(take)

    def _on_header(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        buf = side.buf
        n = len(data)
        if buf:
            need = 9 - len(buf)
            buf += data[pos : pos + need]
            if len(buf) < 9:
                return n
            lt, flags, sid = _HDR.unpack(buf)
            buf.clear()
            pos += need
        elif n - pos >= 9:
            lt, flags, sid = _HDR.unpack_from(data, pos)
            pos += 9
        else:
            buf += data[pos:]
            return n
        length: int = lt >> 8
        ftype = lt & 0xFF
        sid &= 0x7FFFFFFF
        side.fstart = ts
        if side.fresh:
            if ftype == CONTINUATION and not side.block_sid:
                # the rest of a header block whose start came before the join (or a gap): skip it, and
                # forget the dynamic table, which that block may have changed
                side.table.forget()
                side.remaining = length
                side.state = State.SKIP if length else State.HEADER
                return pos
            side.fresh = False
        if side.block_sid and ftype != CONTINUATION:
            raise DecodeError("header block interrupted", f"frame type {ftype} before CONTINUATION")
        if ftype == DATA:
            self._data_start(side, flags, sid, length, ts)
            if length == 0:
                self._data_done(side, ts, out)
            return pos
        if ftype > CONTINUATION:
            side.remaining = length  # unknown frame types are skipped by length (RFC 9113 §4.1)
            side.state = State.SKIP if length else State.HEADER
            return pos
        self._check_frame(ftype, flags, sid, length)
        side.ftype, side.fflags, side.fsid, side.flen = ftype, flags, sid, length
        if n - pos >= length:  # the whole payload is here: no copy
            self._frame(side, data[pos : pos + length], ts, out)
            return pos + length
        if ftype == HEADERS or ftype == CONTINUATION or ftype == PUSH_PROMISE:
            if len(side.block) + length > MAX_HEADER_BLOCK:
                raise DecodeError("header block too large")
            side.keep = length
        else:
            side.keep = min(length, MAX_CONTROL_PAYLOAD)
        side.remaining = length
        side.state = State.PAYLOAD
        return pos

    def _on_payload(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        avail = len(data) - pos
        r = side.remaining
        take = avail if avail < r else r
        room = side.keep - len(side.buf)
        if room > 0:
            side.buf += data[pos : pos + (take if take < room else room)]
        side.remaining = r - take
        if side.remaining:
            return pos + take
        payload = bytes(side.buf)
        side.buf.clear()
        side.state = State.HEADER
        self._frame(side, memoryview(payload), ts, out)
        return pos + take

    def _on_data(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        n = len(data)
        if side.need_pad:
            pad = data[pos]
            pos += 1
            side.need_pad = False
            side.remaining -= 1
            side.data_left = side.remaining - pad
            if side.data_left < 0:
                raise DecodeError("padding exceeds DATA payload")
            if pos == n:
                if side.remaining == 0:
                    self._data_done(side, ts, out)
                return pos
        avail = n - pos
        r = side.remaining
        take = avail if avail < r else r
        d = side.data_left
        if d:
            part = take if take < d else d
            side.data_left = d - part
            half = side.half
            if half is not None:
                half.body_bytes += part
                if half.grpc:
                    _count_grpc(half, data[pos : pos + part])
        side.remaining = r - take
        if side.remaining == 0:
            self._data_done(side, ts, out)
        return pos + take

    def _on_skip(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        avail = len(data) - pos
        r = side.remaining
        if avail < r:
            side.remaining = r - avail
            return len(data)
        side.remaining = 0
        side.state = State.HEADER
        return pos + r

    def _on_unsynced(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        """Find a frame boundary: the preface, or a chain of plausible frame headers (module docstring)."""
        chunk = bytes(side.buf) + data[pos:].tobytes() if side.buf else data[pos:].tobytes()
        side.buf.clear()
        start = -1
        head = chunk[:24]
        if head and PREFACE.startswith(head):
            if len(chunk) < len(PREFACE):
                side.buf += chunk
                return len(data)
            if not side.is_client:
                self._swap_roles(out)  # the preface came from the side guessed to be the server
            start = len(PREFACE)
        else:
            # candidates first, at C speed: a known frame type and the reserved bit clear
            for m in _CANDIDATE.finditer(chunk, 0, min(len(chunk), MAX_RESYNC_SCAN + 6)):
                if _plausible_chain(chunk, m.start()):
                    start = m.start()
                    break
        if start < 0:
            keep = chunk[-8:]
            side.skipped += len(chunk) - len(keep)
            if side.skipped > MAX_RESYNC_SKIP:
                raise DecodeError("no frame boundary found")
            side.buf += keep
            return len(data)
        side.skipped = 0
        side.state = State.HEADER
        side.fresh = True
        side.table.unknown = True
        rest = memoryview(chunk)[start:]
        p = 0
        while p < len(rest):
            p = _HANDLERS[side.state](self, side, rest, p, ts, out)
        return len(data)

    # -- frames -----------------------------------------------------------------------------------------------
    @staticmethod
    def _check_frame(ftype: int, flags: int, sid: int, length: int) -> None:
        on_zero = _ON_ZERO[ftype]
        if on_zero is not None and on_zero != (sid == 0):
            raise DecodeError("frame on the wrong stream", f"type {ftype} on stream {sid}")
        fixed = _FIXED_LEN.get(ftype)
        if fixed is not None and length != fixed:
            raise DecodeError("bad frame length", f"type {ftype} length {length}")
        if ftype == SETTINGS and (length % 6 or (flags & ACK and length)):
            raise DecodeError("bad frame length", f"SETTINGS length {length}")
        if ftype == GOAWAY and length < 8:
            raise DecodeError("bad frame length", f"GOAWAY length {length}")

    def _frame(self, side: _Side, payload: memoryview, ts: int, out: list[Message]) -> None:
        ftype = side.ftype
        if ftype == HEADERS or ftype == CONTINUATION or ftype == PUSH_PROMISE:
            self._header_frame(side, payload, ts, out)
        elif ftype == RST_STREAM:
            self._rst(side, side.fsid, _U32.unpack_from(payload)[0], ts, out)
        elif ftype == SETTINGS:
            self._settings(side, payload)
        elif ftype == GOAWAY:
            last, code = _GOAWAY.unpack_from(payload)
            self._on_goaway(side, last & 0x7FFFFFFF, code, ts, out)
        # PRIORITY, WINDOW_UPDATE, PING: flow control and liveness, not part of any message

    def _header_frame(self, side: _Side, payload: memoryview, ts: int, out: list[Message]) -> None:
        ftype, flags, sid, length = side.ftype, side.fflags, side.fsid, side.flen
        if ftype == CONTINUATION:
            if side.block_sid != sid:
                raise DecodeError("unexpected CONTINUATION", f"stream {sid}")
            frag = payload
        else:
            p = 0
            end = length
            if flags & PADDED:
                if length < 1:
                    raise DecodeError("bad padding")
                end -= payload[0]
                p = 1
            if ftype == HEADERS:
                if flags & PRIO:
                    p += 5
                side.block_promised = 0
                side.block_end = bool(flags & END_STREAM)
            else:
                if end - p < 4:
                    raise DecodeError("bad PUSH_PROMISE")
                side.block_promised = _U32.unpack_from(payload, p)[0] & 0x7FFFFFFF
                side.block_end = False
                p += 4
            if end < p:
                raise DecodeError("padding exceeds frame payload")
            frag = payload[p:end]
            side.block_sid = sid
            side.block.clear()
            side.block_wire = side.block_bytes = 0
        side.block_wire += 9 + length
        side.block_bytes += len(frag)
        if not flags & END_HEADERS:
            if len(side.block) + len(frag) > MAX_HEADER_BLOCK:
                raise DecodeError("header block too large")
            side.block += frag
            return
        if side.block:
            side.block += frag
            block = bytes(side.block)
            side.block.clear()
        else:
            block = frag.tobytes()
        side.block_sid = 0
        self._header_block(side, sid, block, ts, out)

    def _header_block(self, side: _Side, sid: int, block: bytes, ts: int, out: list[Message]) -> None:
        table = side.table
        cached = side.cache.get(block)
        if cached is not None and cached[0] == table.gen:
            _, pseudo, regular_t, sensitive = cached
            lost = False
        else:
            pseudo, regular_t, sensitive, lost = self._decode_block(side, block)
        promised = side.block_promised
        if promised:
            self._promise(side, promised, pseudo, regular_t, ts, lost, out)
            return
        is_client = side.is_client
        if not self._produced and self._wrong_roles(is_client, pseudo):
            self._swap_roles(out)
            is_client = side.is_client
        st = self._streams.get(sid)
        if st is None:
            if is_client and sid <= self._max_client_sid:
                return  # a stream we closed (reset): nothing more to report
            st = self._new_stream(sid, ts, out)
            if is_client:
                self._max_client_sid = sid
        if not is_client and self._held and sid % 2:
            self._release_held(ts, out, opened=sid)
        half = st.halves[0 if is_client else 1]
        if half.start_ns < 0:
            half.start_ns = side.fstart
        half.wire += side.block_wire
        half.header_bytes += side.block_bytes
        half.end_ns = ts
        if lost:
            half.flags |= Flag.MIDSTREAM
        if sensitive:
            half.sensitive = half.sensitive | frozenset(sensitive)
        if half.headers is None and (b":method" in pseudo if is_client else b":status" in pseudo):
            if not self._headers(st, half, is_client, pseudo, regular_t):
                return  # an interim (1xx) response: the exchange goes on
        elif half.headers is None and not pseudo and not half.body_bytes and not side.block_end:
            # a first block with no pseudo-header at all: its pseudo-headers were dynamic entries we
            # never saw; keep it as the headers (the message is flagged midstream)
            half.headers = regular_t
            half.flags |= Flag.MIDSTREAM
        elif half.trailers is None:
            half.trailers = regular_t
        elif len(half.trailers) + len(regular_t) <= MAX_TRAILER_FIELDS:
            half.trailers += regular_t
        else:
            half.flags |= Flag.TRUNCATED
        if side.block_end:
            self._end_half(st, half, is_client, ts, out)

    @staticmethod
    def _headers(
        st: _Stream, half: _Half, is_client: bool, pseudo: dict[bytes, bytes], regular_t: Fields
    ) -> bool:
        """A message's first header block (with :method or :status): its headers; False when it is an
        interim 1xx response, folded into the final one's `interim` instead."""
        if not is_client:
            status = pseudo[b":status"]
            if status[:1] == b"1" and len(status) == 3:
                if len(half.interim) >= MAX_INTERIM:
                    half.flags |= Flag.TRUNCATED
                elif status.isdigit():
                    half.interim.append(int(status))
                return False
        half.headers = regular_t
        half.pseudo = pseudo
        ctype = _ctype_grpc(regular_t)
        if is_client:
            half.grpc = ctype is True
        else:
            req = st.halves[0]
            half.grpc = ctype is True or (ctype is None and req.grpc)
        return True

    @staticmethod
    def _decode_block(
        side: _Side, block: bytes
    ) -> tuple[dict[bytes, bytes], Fields, tuple[bytes, ...], bool]:
        """HPACK-decode one complete block: (pseudo-headers, regular fields, never-indexed names, lost)."""
        table = side.table
        misses = table.misses
        gen = table.gen
        try:
            fields = side.hpack.decode(block, raw=True)
        except hpack.HPACKError as exc:
            raise DecodeError("hpack", str(exc)[:80]) from None
        except (ValueError, IndexError) as exc:  # malformed integer/huffman data the library did not wrap
            raise DecodeError("hpack", str(exc)[:80]) from None
        pseudo: dict[bytes, bytes] = {}
        regular: list[tuple[bytes, bytes]] = []
        sensitive: list[bytes] = []
        for f in fields:
            name, val = f[0], f[1]
            if name[:1] == b":":
                pseudo[name] = val
            elif name == _UNKNOWN_NAME:
                continue
            else:
                regular.append((name, val))
            if type(f) is hpack.NeverIndexedHeaderTuple:
                sensitive.append(name)
        lost = table.misses != misses
        regular_t = tuple(regular)
        sensitive_t = tuple(sensitive)
        if (
            not lost and table.gen == gen
        ):  # the block left the table as it was: the same bytes will decode alike
            cache = side.cache
            if len(cache) >= MAX_BLOCK_CACHE:
                cache.clear()
            cache[block] = (gen, pseudo, regular_t, sensitive_t)
        return pseudo, regular_t, sensitive_t, lost

    def _promise(
        self,
        side: _Side,
        promised: int,
        pseudo: dict[bytes, bytes],
        regular: Fields,
        ts: int,
        lost: bool,
        out: list[Message],
    ) -> None:
        """A PUSH_PROMISE: the server's request on the promised stream, complete at once (RFC 9113 §8.4)."""
        st = self._streams.get(promised)
        if st is None:
            st = self._new_stream(promised, ts, out)
        st.pushed = True
        half = st.halves[0]
        half.start_ns, half.end_ns = side.fstart, ts
        half.wire += side.block_wire
        half.header_bytes += side.block_bytes
        half.headers = regular
        half.pseudo = pseudo
        half.ended = True
        half.grpc = _ctype_grpc(regular) is True
        if lost:
            half.flags |= Flag.MIDSTREAM

    @staticmethod
    def _wrong_roles(is_client: bool, pseudo: dict[bytes, bytes]) -> bool:
        if is_client:
            return b":status" in pseudo and b":method" not in pseudo
        return b":method" in pseudo and b":status" not in pseudo

    def _swap_roles(self, out: list[Message]) -> None:
        for s in self._sides:
            s.is_client = not s.is_client
        self._sides.reverse()
        for st in self._streams.values():
            st.halves = (st.halves[1], st.halves[0])
        out.append(SwapRoles(start_ns=0, end_ns=0, size=0, flags=0))

    def _half_for(self, side: _Side, sid: int) -> _Half | None:
        st = self._streams.get(sid)
        if st is None:
            return None
        half = st.halves[0 if side.is_client else 1]
        if half.start_ns < 0:
            half.start_ns = side.fstart
        return half

    def _new_stream(self, sid: int, ts: int, out: list[Message]) -> _Stream:
        streams = self._streams
        if len(streams) >= MAX_STREAMS:
            oldest = streams[next(iter(streams))]
            self.evicted_streams += 1
            oldest.halves[0].flags |= Flag.TRUNCATED
            oldest.halves[1].flags |= Flag.TRUNCATED
            self._finish(oldest, ts, out, truncated=True, no_answer=True)
        st = streams[sid] = _Stream(sid)
        return st

    # -- DATA -----------------------------------------------------------------------------------------------
    def _data_start(self, side: _Side, flags: int, sid: int, length: int, ts: int) -> None:
        if sid == 0:
            raise DecodeError("frame on the wrong stream", "DATA on stream 0")
        side.fflags = flags
        side.fsid = sid
        side.flen = length
        side.remaining = length
        side.need_pad = bool(flags & PADDED) and length > 0
        if flags & PADDED and length == 0:
            raise DecodeError("bad padding")
        side.data_left = length
        half = self._half_for(side, sid)
        if half is not None:
            half.wire += 9 + length
        side.half = half
        side.state = State.DATA

    def _data_done(self, side: _Side, ts: int, out: list[Message]) -> None:
        side.state = State.HEADER
        half = side.half
        side.half = None
        if half is None:
            return
        half.end_ns = ts
        if side.fflags & END_STREAM:
            st = self._streams.get(side.fsid)
            if st is not None:
                self._end_half(st, half, side.is_client, ts, out)

    # -- stream ends ----------------------------------------------------------------------------------------
    def _end_half(self, st: _Stream, half: _Half, is_client: bool, ts: int, out: list[Message]) -> None:
        half.ended = True
        half.end_ns = ts
        if not is_client:
            self._finish(st, ts, out)

    def _rst(self, side: _Side, sid: int, code: int, ts: int, out: list[Message]) -> None:
        st = self._streams.get(sid)
        if st is None:
            return
        if st.reset_by != "client":  # a held stream keeps the client's reset (the server may answer one)
            st.reset = code
            st.reset_by = "client" if side.is_client else "server"
        resp = st.halves[1]
        if resp.headers is not None:
            resp.end_ns = ts
            self._finish(st, ts, out)
        elif side.is_client and sid not in self._held:
            # the server may have answered already, its response crossing this RST on the wire: wait for it
            held = self._held
            if len(held) >= MAX_HELD_RESETS:
                self.held_resets_evicted += 1
                oldest = self._streams.get(next(iter(held)))
                held.pop(next(iter(held)))
                if oldest is not None:
                    self._finish(oldest, ts, out, no_answer=oldest.halves[1].headers is None)
            held[sid] = (ts + RESET_GRACE_NS, self._max_client_sid)
        else:
            self._finish(st, ts, out, no_answer=True)

    def _release_held(self, ts: int, out: list[Message], deadline: int = -1, opened: int = 0) -> None:
        """End the held reset streams whose wait is over: the grace time passed (`deadline`), or the server
        sent a frame on client stream `opened`, which the client opened after resetting them."""
        held = self._held
        while held:  # in reset order, so deadlines and stream ids only grow: stop at the first still waiting
            sid = next(iter(held))
            until, below = held[sid]
            if not ((deadline >= 0 and until <= deadline) or (opened and below < opened)):
                return
            del held[sid]
            st = self._streams.get(sid)
            if st is not None:
                self._finish(st, ts, out, no_answer=st.halves[1].headers is None)

    def _on_goaway(self, side: _Side, last: int, code: int, ts: int, out: list[Message]) -> None:
        self._goaway = code
        # streams the sender never processed (initiated by the receiver, above Last-Stream-ID) end now
        peer_parity = 1 if side.is_client is False else 0
        for st in list(self._streams.values()):
            if st.sid > last and st.sid % 2 == peer_parity and st.halves[1].headers is None:
                st.goaway = code
                self._finish(st, ts, out, no_answer=True)

    def _settings(self, side: _Side, payload: memoryview) -> None:
        other = self._sides[1] if side is self._sides[0] else self._sides[0]
        if side.fflags & ACK:
            # this side acknowledged the other's settings: its encoder now works within them
            if other.pending_table >= 0:
                side.hpack.max_allowed_table_size = min(other.pending_table, MAX_HPACK_TABLE)
                other.pending_table = -1
            return
        for i in range(0, len(payload) - 5, 6):
            ident, val = _SETTING.unpack_from(payload, i)
            if ident == SETTINGS_HEADER_TABLE_SIZE:
                side.pending_table = val
                # lenient until acknowledged: blocks in flight may use either size
                other.hpack.max_allowed_table_size = min(
                    max(other.hpack.max_allowed_table_size, val), MAX_HPACK_TABLE
                )

    def _finish(
        self, st: _Stream, ts: int, out: list[Message], truncated: bool = False, no_answer: bool = False
    ) -> None:
        """The stream is over: emit its request (and response); free it."""
        self._streams.pop(st.sid, None)
        if self._held:
            self._held.pop(st.sid, None)
        req, resp = st.halves
        if self._goaway is not None and truncated and st.goaway is None and resp.headers is None:
            st.goaway = self._goaway
        ctype = _ctype_grpc(req.headers)
        if ctype is None:
            ctype = _ctype_grpc(resp.headers)
        grpc = self._default_grpc if ctype is None else ctype
        if req.headers is not None:
            if truncated and not req.ended:
                req.flags |= Flag.TRUNCATED
            out.append(self._request(st, req, grpc))
            self._produced = True
        if resp.headers is not None:
            if truncated and not resp.ended and st.reset is None:
                resp.flags |= Flag.TRUNCATED
            out.append(self._response(st, resp, grpc, ts))
            self._produced = True
        elif no_answer and req.headers is not None:
            out.append(NoAnswer(start_ns=ts, end_ns=ts, size=0, flags=0, key=st.sid))

    def _request(self, st: _Stream, h: _Half, grpc: bool) -> Message:
        p = h.pseudo
        headers = h.headers or ()
        tp = field_value(headers, b"traceparent")
        trace = parse_traceparent(tp, field_value(headers, b"tracestate")) if tp is not None else None
        method = p.get(b":method")
        scheme = p.get(b":scheme")
        authority = p.get(b":authority")
        path = p.get(b":path")
        cls = GrpcRequest if grpc else Http2Request
        start = h.start_ns if h.start_ns >= 0 else h.end_ns
        end = h.end_ns if h.end_ns >= 0 else start
        return cls(
            start, end, h.wire, h.flags,
            st.sid,
            method.decode("latin-1") if method is not None else "",
            scheme.decode("latin-1") if scheme is not None else None,
            authority.decode("utf-8", "replace") if authority is not None else None,
            path.decode("utf-8", "replace") if path is not None else None,
            headers, h.trailers, h.header_bytes, h.body_bytes,
            st.reset, st.reset_by, st.goaway, st.pushed, trace,
            h.msgs, h.msg_bytes, h.compressed, self._redact, h.sensitive, self._redact_query,
        )  # fmt: skip

    def _response(self, st: _Stream, h: _Half, grpc: bool, ts: int) -> Message:
        raw = h.pseudo.get(b":status")
        status = int(raw) if raw is not None and raw.isdigit() and len(raw) == 3 else None
        cls = GrpcResponse if grpc else Http2Response
        start = h.start_ns if h.start_ns >= 0 else ts
        end = h.end_ns if h.end_ns >= 0 else ts
        return cls(
            start, end, h.wire, h.flags,
            st.sid, status, h.headers or (), h.trailers, tuple(h.interim), h.header_bytes, h.body_bytes,
            st.reset, st.reset_by, h.msgs, h.msg_bytes, h.compressed, self._redact, h.sensitive,
        )  # fmt: skip

    # -- resynchronisation, hand-over ------------------------------------------------------------------------
    def _lose_sync(self, side: _Side) -> None:
        side.state = State.UNSYNCED
        side.buf.clear()
        side.block.clear()
        side.block_sid = 0
        side.half = None
        side.need_pad = False
        side.table.forget()
        side.hpack.max_allowed_table_size = MAX_HPACK_TABLE

    def _adopt_upgrade(self, up: Http1Request) -> None:
        """HTTP/1.1 `Upgrade: h2c`: the upgrade request is stream 1's request (RFC 7540 §3.2), half-closed."""
        st = self._streams[1] = _Stream(1)
        self._max_client_sid = 1
        h = st.halves[0]
        h.start_ns, h.end_ns = up.start_ns, up.end_ns
        h.wire, h.header_bytes, h.body_bytes = up.size, up.header_bytes, up.body_bytes
        h.flags = up.flags
        h.ended = True
        fields: list[tuple[bytes, bytes]] = []
        settings = None
        for line in up.header_block.split(b"\r\n"):
            name, sep, val = line.partition(b":")
            if not sep:
                continue
            lname = name.strip().lower()
            v = val.strip()
            if lname == b"http2-settings":
                settings = v
            fields.append((lname, v))
        h.headers = tuple(fields)
        h.pseudo = {
            b":method": up.method.encode("latin-1"),
            b":scheme": b"http",
            b":path": up.target.encode(),
        }
        if up.host is not None:
            h.pseudo[b":authority"] = up.host.encode()
        h.grpc = _ctype_grpc(h.headers) is True
        if settings:
            # the client's SETTINGS (RFC 7540 §3.2.1) bound the server's encoder from the 101 on
            try:
                raw = base64.urlsafe_b64decode(settings + b"=" * (-len(settings) % 4))
            except ValueError:
                raw = b""
            for i in range(0, len(raw) - 5, 6):
                # not `val`: that name holds a field's bytes above, and mypyc checks each assignment
                # against the variable's one declared type (an int there raises TypeError compiled)
                ident, size = _SETTING.unpack_from(raw, i)
                if ident == SETTINGS_HEADER_TABLE_SIZE:
                    self._sides[1].hpack.max_allowed_table_size = min(size, MAX_HPACK_TABLE)


def _count_grpc(half: _Half, mv: memoryview) -> None:
    """Walk gRPC message prefixes (Compressed-Flag, 4-byte length) through a piece of DATA payload."""
    i = 0
    n = len(mv)
    while i < n:
        left = half.msg_left
        if left:
            take = n - i if n - i < left else left
            half.msg_left = left - take
            i += take
            continue
        pfx = half.pfx
        if not pfx and n - i >= 5:
            flag = mv[i]
            length = _U32.unpack_from(mv, i + 1)[0]
            i += 5
        else:
            need = 5 - len(pfx)
            pfx += mv[i : i + need].tobytes()
            i += min(need, n - i)
            if len(pfx) < 5:
                half.pfx = pfx
                return
            half.pfx = b""
            flag = pfx[0]
            length = _U32.unpack_from(pfx, 1)[0]
        if flag > 1:
            half.grpc = False  # not a gRPC message prefix: stop counting rather than count garbage
            return
        half.msgs += 1
        half.msg_bytes += length
        if flag:
            half.compressed += 1
        half.msg_left = length


def _plausible(chunk: bytes, o: int) -> int:
    """Length of the frame whose header starts at `o` if it looks like one, else -1 (-2: incomplete)."""
    if len(chunk) - o < 9:
        return -2
    lt, flags, sid = _HDR.unpack_from(chunk, o)
    ftype = lt & 0xFF
    length: int = lt >> 8
    if ftype > CONTINUATION or sid & 0x80000000 or flags & ~_FLAG_MASK[ftype] & 0xFF:
        return -1
    on_zero = _ON_ZERO[ftype]
    if on_zero is not None and on_zero != (sid == 0):
        return -1
    fixed = _FIXED_LEN.get(ftype)
    if fixed is not None and length != fixed:
        return -1
    if ftype == SETTINGS and length % 6:
        return -1
    return length


def _plausible_chain(chunk: bytes, o: int) -> bool:
    """Whether a frame boundary is at `o`: two or more plausible frame headers in a row, or one frame that
    ends exactly at the end of the chunk, or one that starts the chunk (segments usually start frames)."""
    start = o
    n = len(chunk)
    frames = 0
    while frames < 4:
        length = _plausible(chunk, o)
        if length == -1:
            return False
        if length == -2:  # fewer than 9 bytes left: cannot look further
            break
        frames += 1
        o += 9 + length
        if o >= n:
            break
    return frames >= 2 or (frames == 1 and (o == n or start == 0))


_Handler = Callable[[Http2Decoder, _Side, memoryview, int, int, list[Message]], int]
_HANDLERS: dict[State, _Handler] = {
    State.PREFACE: Http2Decoder._on_preface,
    State.HEADER: Http2Decoder._on_header,
    State.PAYLOAD: Http2Decoder._on_payload,
    State.DATA: Http2Decoder._on_data,
    State.SKIP: Http2Decoder._on_skip,
    State.UNSYNCED: Http2Decoder._on_unsynced,
}


def new_http2_decoder(ctx: DecoderContext) -> Http2Decoder:
    """Registry factory for the `http2` row: streams without a readable content-type are HTTP/2."""
    return Http2Decoder(ctx, "http2")


def new_grpc_decoder(ctx: DecoderContext) -> Http2Decoder:
    """Registry factory for the `grpc` row: streams without a readable content-type are gRPC."""
    return Http2Decoder(ctx, "grpc")


__all__ = ["Http2Decoder", "Http2Options", "new_grpc_decoder", "new_http2_decoder"]
