"""HTTP/1.0 and HTTP/1.1 decoder (RFC 9112), both directions of one connection.

Theory of operation
-------------------
Each direction is a `_Side` with its own state: HEAD (looking for a complete start line + header block),
BODY (Content-Length bytes left), CHUNK_SIZE / CHUNK_DATA / CHUNK_CRLF / TRAILER (chunked coding), CLOSE
(a response delimited by the end of the connection), PAUSED (client bytes held back until the server
answers an `Upgrade` or `CONNECT`), TUNNEL (a CONNECT was answered 2xx: both sides' bytes are held until
the client's first ones show what the tunnel carries: TLS, the HTTP/2 preface, or HTTP/1), DEAD (the
connection was handed over). The receive loop calls the handler of the current state, which consumes some
bytes and returns the new position; every complete message found in a segment is returned, so pipelining
costs nothing special.

Only header blocks are ever buffered (bounded by MAX_HEAD). Body bytes are counted from the memoryview and
never copied, except for the optional, capped capture of textual bodies.

A response is framed with its request in hand (RFC 9112 §6.3): the methods of requests whose response has
not been framed yet wait in a bounded queue, so HEAD responses and 2xx answers to CONNECT carry no body,
whatever their Content-Length says. 1xx responses other than 101 are interim: they do not end the
exchange; they are folded into the final response's `interim` field. A final response that is complete
before its request is (servers answer `Expect: 100-continue` uploads, or refuse a too large head or body,
before it has all arrived) is held until the request is, so the FIFO matcher sees them in order.

Real traffic is messier than RFC 9112: a request line a server would answer (`GET/ HTTP/1.1`,
`GET /HTTP/1.1`, a cut version, an empty target, stray blanks, bare LFs) is still a request, its tokens kept
as sent and the message flagged `malformed`; only a line with no method token (binary, TLS) is a
DecodeError. A start line and header block that a gap or the end of the capture cuts off is emitted with
what was seen (flagged `gap`/`truncated`), so its exchange stays one roundtrip.

What it deliberately ignores: header field syntax beyond what framing needs (the record parses the block
leniently when it is serialised), content codings (bodies are counted as sent), HTTP/0.9.

Resynchronisation: after a gap it cannot absorb (a gap inside a body of known length is absorbed: the
count just moves on), a DecodeError reset, or when the capture joins a connection mid-stream, a side is
"unsynced": it searches for the next request line (or status line) and discards what comes before it.

Wire format (RFC 9112 §2.1, §3, §4, §7.1):

    HTTP-message  = start-line CRLF *( field-line CRLF ) CRLF [ message-body ]
    request-line  = method SP request-target SP HTTP-version        e.g. GET /a?b HTTP/1.1
    status-line   = HTTP-version SP status-code SP [ reason-phrase ]  e.g. HTTP/1.1 200 OK
    chunked-body  = *chunk last-chunk trailer-section CRLF
    chunk         = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
    last-chunk    = 1*("0") [ chunk-ext ] CRLF
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any, Final

from packetd.protocols import tls
from packetd.protocols.base import (
    MAX_PENDING,
    NO_MESSAGES,
    DecodeError,
    DecoderContext,
    Direction,
    Flag,
    HandOver,
    Message,
    StopDecoding,
    SwapRoles,
    SyncLost,
)
from packetd.protocols.http1.messages import Request, Response
from packetd.protocols.http1.options import HttpOptions
from packetd.protocols.pending import PendingQueue
from packetd.protocols.traceparent import parse_traceparent

# start line + header block; nginx's default large_client_header_buffers is 4 x 8 KiB
MAX_HEAD: Final = 64 * 1024
# a request line longer than this is garbage, not a message waiting to complete
MAX_START_LINE: Final = 8 * 1024
MAX_CHUNK_LINE: Final = 4 * 1024  # chunk-size line with extensions
# a method token longer than this is not a method (the longest registered, UPDATEREDIRECTREF, has 17)
MAX_METHOD: Final = 64
MAX_VERSION: Final = 16  # characters kept of a malformed request line's version token
TUNNEL = "CONNECT tunnel"  # StopDecoding.reason of a tunnel this decoder does not read
MAX_PAUSED: Final = 256 * 1024  # client bytes held while an Upgrade/CONNECT answer is awaited
# bytes searched for a start line before the connection is declared not HTTP (a DecodeError; the session
# gives up after a few): a joined download may be long, but regex-searching gigabytes of it is not free
MAX_RESYNC_SKIP: Final = 16 * 1024 * 1024
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4

# token characters (RFC 9110 §5.6.2): a method is valid when deleting these leaves nothing.
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VERSIONS = {b"HTTP/1.1": "HTTP/1.1", b"HTTP/1.0": "HTTP/1.0"}
_VERSION_TOKEN = re.compile(rb"HTTP/\d\.\d")
_CRLF = frozenset(b"\r\n")
_AFTER_METHOD = b" \t/"  # what may follow a method token on a lenient request line
# Resynchronisation patterns: stricter than the synced parser (upper-case methods) to avoid false starts
# inside bodies.
_REQUEST_LINE = re.compile(rb"(?:^|\n)([A-Z][A-Z_-]{0,31} [^\s]{1,8000} HTTP/1\.[01]\r?\n)")
_STATUS_LINE = re.compile(rb"(?:^|\n)(HTTP/1\.[01] [1-5]\d\d(?: [^\r\n]*)?\r?\n)")
# the same, anchored where a new segment begins: after a gap, a segment often starts a message
_REQUEST_AT = re.compile(rb"[A-Z][A-Z_-]{0,31} [^\s]{1,8000} HTTP/1\.[01]\r?\n")
_STATUS_AT = re.compile(rb"HTTP/1\.[01] [1-5]\d\d(?: [^\r\n]*)?\r?\n")
_METHOD_AT = re.compile(rb"[A-Z][A-Z_-]{0,31}(?: [^\s]*(?: [^\s]*)?)?$")  # a request line's start
_TEXTUAL = (b"text/", b"json", b"xml", b"x-www-form-urlencoded", b"javascript", b"graphql")


class State(IntEnum):
    HEAD = 0
    BODY = 1
    CHUNK_SIZE = 2
    CHUNK_DATA = 3
    CHUNK_CRLF = 4
    TRAILER = 5
    CLOSE = 6
    PAUSED = 7
    DEAD = 8
    TUNNEL = 9


class _Side:
    """One direction's framing state and the message under construction."""

    __slots__ = (
        "body_bytes",
        "buf",
        "capture",
        "flags",
        "head",
        "interim",
        "is_request",
        "last_ns",
        "remaining",
        "skipped",
        "start_ns",
        "state",
        "synced",
        "wire",
    )

    def __init__(self, is_request: bool, synced: bool) -> None:
        self.is_request = is_request
        self.state = State.HEAD
        self.buf = bytearray()
        self.synced = synced
        self.remaining = 0
        self.skipped = 0  # bytes discarded while searching for a start line
        self.start_ns = -1
        self.last_ns = -1  # time of the last body byte (close-delimited and truncated messages end there)
        self.head: tuple[Any, ...] = ()
        self.wire = 0
        self.body_bytes = 0
        self.flags = 0
        self.capture: bytearray | None = None
        self.interim: list[int] = []


def _scan(
    block: bytes, want_ctype: bool
) -> tuple[
    int | None, bool | None, bytes, bytes | None, bytes | None, bytes | None, bytes | None, bytes | None
]:
    """The header fields framing and the record need, found with `find` on the lower-cased block.

    Returns (content-length, chunked, connection tokens lower-cased, host, upgrade lower-cased,
    traceparent, tracestate, content-type lower-cased); chunked is None without Transfer-Encoding and
    False when its final coding is not chunked. Measured faster than one regex pass (`findall` plus a
    loop over the matches) for typical header blocks: most fields are absent, and an absent field costs one
    C-level scan.
    """
    lb = block.lower()
    length = chunked = host = upgrade = tp = tstate = ctype = None
    conn = b""
    i = lb.find(b"\r\ncontent-length:")
    if i >= 0:
        i += 17
        value = lb[i : lb.index(b"\r\n", i)].strip()
        if b"," in value:  # a list of identical values is allowed (RFC 9112 §6.3 item 5)
            values = {v.strip() for v in value.split(b",")}
            if len(values) != 1:
                raise DecodeError("bad content-length", value[:40].decode("latin-1"))
            value = values.pop()
        if not value.isdigit() or len(value) > 18:
            raise DecodeError("bad content-length", value[:40].decode("latin-1"))
        length = int(value)
        j = lb.find(b"\r\ncontent-length:", i)
        if j >= 0 and lb[j + 17 : lb.index(b"\r\n", j + 17)].strip() != value:
            raise DecodeError("conflicting content-length")
    i = lb.find(b"\r\nconnection:")
    if i >= 0:
        conn = lb[i + 13 : lb.index(b"\r\n", i + 13)]
        j = lb.find(b"\r\nconnection:", i + 13)
        while j >= 0:  # several fields form one list (RFC 9110 §5.3)
            conn += b"," + lb[j + 13 : lb.index(b"\r\n", j + 13)]
            j = lb.find(b"\r\nconnection:", j + 13)
        if b"upgrade" in conn:
            i = lb.find(b"\r\nupgrade:")
            if i >= 0:
                upgrade = lb[i + 10 : lb.index(b"\r\n", i + 10)].strip()
    i = lb.find(b"\r\nhost:")
    if i >= 0:
        host = block[i + 7 : block.index(b"\r\n", i + 7)].strip()
    if b"\r\nt" in lb:  # transfer-encoding, traceparent, tracestate
        i = lb.find(b"\r\ntransfer-encoding:")
        while i >= 0:  # the last field's last coding decides
            codings = lb[i + 20 : lb.index(b"\r\n", i + 20)]
            chunked = codings.rsplit(b",", 1)[-1].strip() == b"chunked"
            i = lb.find(b"\r\ntransfer-encoding:", i + 20)
        i = lb.find(b"\r\ntraceparent:")
        if i >= 0:
            tp = lb[i + 14 : lb.index(b"\r\n", i + 14)]
            i = lb.find(b"\r\ntracestate:")
            if i >= 0:
                tstate = block[i + 13 : block.index(b"\r\n", i + 13)]
    if want_ctype:
        i = lb.find(b"\r\ncontent-type:")
        if i >= 0:
            ctype = lb[i + 15 : lb.index(b"\r\n", i + 15)]
    return length, chunked, conn, host, upgrade, tp, tstate, ctype


def _closes(version: str, conn: bytes) -> bool:
    """Whether the connection closes after this message (RFC 9112 §9.3)."""
    if b"close" in conn:
        return True
    return version == "HTTP/1.0" and b"keep-alive" not in conn


def _textual(ctype: bytes | None) -> bool:
    return ctype is not None and any(t in ctype for t in _TEXTUAL)


def _may_be_settings(data: bytearray) -> bool:
    """The first bytes an HTTP/2 server sends (its SETTINGS frame: frame type 4 at byte 3) may reach a
    tunnel before the client's preface: they do not mean a server-first protocol."""
    return len(data) < 4 or data[3] == 0x04


class Http1Decoder:
    """Decoder for one HTTP/1.x connection (see module docstring)."""

    def __init__(self, ctx: DecoderContext | None = None) -> None:
        ctx = ctx or DecoderContext()
        self._opts: HttpOptions = ctx.options if isinstance(ctx.options, HttpOptions) else HttpOptions()
        synced = not ctx.midstream
        self._sides = [_Side(True, synced), _Side(False, synced)]
        # (method, upgrade token or b"") of requests whose response is not framed yet
        # beyond MAX_PENDING (the pairing bound) a request is not tracked and its answer is framed without
        # its method, the overflow rule of PendingQueue: the oldest keeps its place
        self._methods: PendingQueue[tuple[bytes, bytes]] = PendingQueue(MAX_PENDING)
        self._produced = 0  # messages emitted: roles can only be swapped before the first
        self._requests = self._responses = 0  # requests and final responses framed
        # a final response that came before its request ended (an answer to `Expect: 100-continue`, a 413
        # before the body, a 400 before the end of a too large head): held until the request is complete,
        # so that the matcher sees the request first. One at most: the client cannot send another request
        # before this one ends.
        self._early: Message | None = None
        self._tunnel_due = False  # a CONNECT tunnel has bytes not yet looked at (see _tunnel)
        self._handover: tuple[str, Message | None] | None = None  # set when the connection switches

    # -- the Decoder interface ---------------------------------------------------------------------------
    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        out: list[Message] = []
        self._run(self._sides[direction], data, ts_ns, out)
        if self._tunnel_due:  # tunnel bytes arrived: see what the tunnel carries (outside the handlers)
            self._tunnel_due = False
            self._tunnel(ts_ns, out)
        return out

    def _run(self, side: _Side, data: memoryview, ts: int, out: list[Message]) -> None:
        pos = 0
        n = len(data)
        handlers = _HANDLERS
        while pos < n:
            pos = handlers[side.state](self, side, data, pos, ts, out)
            if side.state is State.DEAD:
                if self._handover is not None:
                    self._emit_handover(side, data[pos:].tobytes(), ts, out)
                return

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]:
        side = self._sides[direction]
        state = side.state
        out: list[Message] = []
        if state in (State.BODY, State.CHUNK_DATA) and nbytes <= side.remaining:
            # the gap lies inside a body of known length: framing survives, the message is flagged
            side.remaining -= nbytes
            side.body_bytes += nbytes
            side.wire += nbytes
            side.flags |= Flag.GAP
            if side.capture is not None:
                side.capture = None  # a body with a hole is not worth showing
            if side.remaining == 0 and state is State.BODY:
                self._finish(side, ts_ns, out)
            return out
        if state is State.CLOSE:
            side.body_bytes += nbytes
            side.wire += nbytes
            side.flags |= Flag.GAP
            side.capture = None
            return out
        if state in (State.PAUSED, State.DEAD):
            return out
        if state is State.TUNNEL:
            self._stop_tunnel(ts_ns, out)
            return out
        if state is not State.HEAD:
            # a message was in progress: emit it as far as it got, flagged, then search for the next start
            side.flags |= Flag.GAP | Flag.TRUNCATED
            self._finish(side, ts_ns, out)
        elif side.buf and side.synced:
            # the gap cut a start line or header block: what was seen of it is still the message (its
            # answer pairs with it by order), flagged as a message cut short is
            self._partial_head(side, Flag.GAP | Flag.TRUNCATED, out)
        if not side.is_request:
            self._methods.clear()  # responses were lost with their framing: forget what they answered
        side.buf.clear()
        side.start_ns = -1
        side.state = State.HEAD
        side.synced = False
        side.flags = Flag.GAP
        out.append(SyncLost(start_ns=ts_ns, end_ns=ts_ns, size=0, flags=0, direction=direction))
        return out

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]:
        side = self._sides[direction]
        state = side.state
        if state is State.CLOSE or state in _BODY_STATES:
            out: list[Message] = []
            if state is not State.CLOSE:
                side.flags |= Flag.TRUNCATED  # the connection ended before the declared length
            self._finish(side, side.last_ns if side.last_ns >= 0 else ts_ns, out)
            return out
        if state is State.HEAD and side.buf and side.synced:
            out = []
            self._partial_head(side, Flag.TRUNCATED, out)  # the capture or the connection ended inside it
            side.buf.clear()
            return out
        side.buf.clear()
        return NO_MESSAGES

    # -- HEAD: start line and header block -----------------------------------------------------------------
    def _on_head(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        if not side.synced:
            return self._on_unsynced(side, data, pos, ts, out)
        buf = side.buf
        old = len(buf)
        if not old and data[pos] in _CRLF:
            # an empty line between messages (a stray CRLF after a body): RFC 9112 §2.2 has servers ignore
            # it before a request line; it belongs to no message
            window = data[pos : pos + 64].tobytes()
            return pos + len(window) - len(window.lstrip(b"\r\n"))
        if old:
            take = data[pos : pos + MAX_HEAD - old]
            buf += take
            chunk: bytes | bytearray = buf
            search_from = old - 3 if old > 3 else 0
        else:
            chunk = data[pos : pos + MAX_HEAD].tobytes()
            search_from = 0
            side.start_ns = ts
        if not side.is_request and not old and not self._produced and _h2_settings(chunk):
            # an HTTP/2 server may send its SETTINGS before the client's preface arrives (RFC 9113 §3.4):
            # hold them for the hand-over that the preface will cause
            side.state = State.PAUSED
            return self._on_paused(side, data, pos, ts, out)
        if side.is_request and chunk[:1] == b"P" and H2_PREFACE.startswith(bytes(chunk[:24])):
            if len(chunk) < len(H2_PREFACE):
                if not old:
                    buf += chunk
                return len(data)
            # HTTP/2 with prior knowledge on an HTTP port: everything from the preface on is HTTP/2;
            # the buffered start stays in side.buf, _run passes it on with the rest of the segment
            del buf[old:]
            self._handover = ("h2c-prior-knowledge", None)
            for s in self._sides:
                s.state = State.DEAD
            return pos
        end = self._find_head_end(chunk, search_from)
        if end < 0:
            if len(chunk) >= MAX_HEAD:
                raise DecodeError("header block too large")
            if old:
                if b"\n" not in chunk[: MAX_START_LINE + 1]:
                    self._check_start(side, chunk)
            else:
                self._check_start(side, chunk)
                buf += chunk
            side.last_ns = ts  # a head cut off here (gap, end of capture) ends here
            return len(data)
        head = bytes(chunk[:end])
        if old:
            buf.clear()
        self._head_complete(side, head, ts, out)
        return pos + end - old

    def _on_unsynced(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        """Search for the next start line of this side's kind; keep a tail that may still become one."""
        boundary = len(side.buf)  # where this segment's bytes begin in `chunk`
        chunk = bytes(side.buf) + data[pos:].tobytes() if side.buf else data[pos:].tobytes()
        side.buf.clear()
        start = -1
        if side.is_request and H2_PREFACE.startswith(chunk[:24]):
            start = 0
        elif boundary and (_REQUEST_AT if side.is_request else _STATUS_AT).match(chunk, boundary):
            start = boundary  # a message starting the segment, after bytes that did not end a line
        else:
            m = (_REQUEST_LINE if side.is_request else _STATUS_LINE).search(chunk)
            if m is not None:
                start = m.start(1)
            elif self._can_swap():
                m = (_STATUS_LINE if side.is_request else _REQUEST_LINE).search(chunk)
                if m is not None:
                    self._swap_roles(out)
                    start = m.start(1)
        if start < 0:
            nl = chunk.rfind(b"\n")
            tail = chunk[nl + 1 :] if nl >= 0 else chunk
            if len(tail) <= MAX_START_LINE:
                side.buf += tail
            side.skipped += len(chunk) - len(side.buf)
            if side.skipped > MAX_RESYNC_SKIP:
                raise DecodeError("no message start found")
            return len(data)
        side.skipped = 0
        side.synced = True
        if not side.flags & Flag.GAP:
            side.flags |= Flag.MIDSTREAM
        side.start_ns = ts
        self._run(side, memoryview(chunk)[start:], ts, out)
        return len(data)

    @staticmethod
    def _find_head_end(chunk: bytes | bytearray, start: int) -> int:
        """Offset just past the blank line ending the header block, or -1 (bare LF accepted)."""
        end = chunk.find(b"\r\n\r\n", start)
        if end >= 0:
            return end + 4
        lf = chunk.find(b"\n\n", start)
        if lf < 0:
            lf = chunk.find(b"\n\r\n", start)
            return lf + 3 if lf >= 0 else -1
        return lf + 2

    def _check_start(self, side: _Side, chunk: bytes | bytearray) -> None:
        """Reject garbage early instead of buffering 64 KiB of it waiting for a blank line."""
        eol = chunk.find(b"\n")
        line = chunk if eol < 0 else chunk[:eol]
        if eol < 0 and len(chunk) > MAX_START_LINE:
            raise DecodeError("start line too long")
        if bytes(line[:5]) == b"HTTP/"[: len(line[:5])]:
            if side.is_request and not self._can_swap():
                raise DecodeError("bad request line")
            return  # a status line (a response where a request was expected is handled when complete)
        if not _request_start(line, eol >= 0):
            raise DecodeError("bad request line" if side.is_request else "bad status line")
        if not side.is_request and not self._can_swap():
            raise DecodeError("bad status line")

    def _partial_head(self, side: _Side, flags: int, out: list[Message]) -> None:
        """Emit what was seen of a start line and header block that will never complete (a gap, the end of
        the capture): the start line's fields (as far as they go) and the complete field lines, flagged.
        Nothing when the bytes do not begin a message; 1xx interim heads are dropped as they would be."""
        head = bytes(side.buf).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        eol = head.find(b"\r\n")
        line = head if eol < 0 else head[:eol]
        last = head.rfind(b"\r\n")
        block = head[eol:last] + b"\r\n" if eol >= 0 else b""  # the complete field lines only
        try:
            _length, _chunked, conn, host, *_ = _scan(block, False)
        except DecodeError:
            conn, host = b"", None  # a field too broken to read is left out of a record of what was seen
        wire = len(side.buf)
        start = side.start_ns if side.start_ns >= 0 else side.last_ns
        end = side.last_ns if side.last_ns >= 0 else start
        side.flags |= flags
        if side.is_request:
            if not _request_start(line, eol >= 0):
                return
            parts = line.split(b" ") if eol < 0 else None
            if parts is not None:  # the request line itself was cut: its tokens as far as they go
                method, target = parts[0], parts[1] if len(parts) > 1 else b""
                vraw = parts[2] if len(parts) > 2 else b""
                version = vraw[:MAX_VERSION].decode("latin-1")
            else:
                try:
                    method, target, vraw, malformed = _request_line(line)
                except DecodeError:
                    return  # not a request line: nothing to keep
                version = _VERSIONS.get(vraw) or _lenient_version(vraw)
                if malformed:
                    side.flags |= Flag.MALFORMED
            if not method or method.translate(None, _TCHAR) or len(method) > MAX_METHOD:
                return
            self._methods.push((method, b""))
            side.head = (
                method.decode("latin-1"), target[:MAX_START_LINE].decode("utf-8", "replace"), version,
                host.decode("utf-8", "replace") if host is not None else None,
                block, wire, False, _closes(version, conn), None, b"",
            )  # fmt: skip
        else:
            parts = line.split(b" ", 2)
            code_raw = parts[1] if len(parts) > 1 else b""
            if not line.startswith(b"HTTP/") or len(code_raw) != 3 or not code_raw.isdigit():
                return
            code = int(code_raw)
            if (code < 200 and code != 101) or code_raw[0] == 0x30:
                return
            self._answered()
            reason = parts[2].decode("utf-8", "replace") if len(parts) > 2 else ""
            version = parts[0][:MAX_VERSION].decode("latin-1")
            side.head = (code, reason, version, block, wire, False, _closes(version, conn))
        side.wire = wire
        side.body_bytes = 0
        side.capture = None
        side.start_ns = start
        self._finish(side, end, out)
        side.state = State.HEAD  # the caller decides how to go on (resynchronise, or nothing more)

    def _can_swap(self) -> bool:
        """Roles may be corrected only before anything was framed: no message emitted, none in progress."""
        return not self._produced and all(s.state is State.HEAD for s in self._sides)

    def _swap_roles(self, out: list[Message]) -> None:
        for s in self._sides:
            s.is_request = not s.is_request
        self._sides.reverse()
        out.append(SwapRoles(start_ns=0, end_ns=0, size=0, flags=0))

    def _head_complete(self, side: _Side, head: bytes, ts: int, out: list[Message]) -> None:
        wire = len(head)
        eol = head.find(b"\n") - 1  # the start line's CR, when it ends in CRLF
        if (
            eol < 0
            or head[eol] != 0x0D  # the start line ends in a bare LF
            or head[-4:] != b"\r\n\r\n"
            or head[eol + 2 : eol + 3] == b"\n"
        ):
            # bare-LF line endings (lenient, as browsers and curl are): normalise to CRLF
            head = head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            eol = head.index(b"\r\n")
        line = head[:eol]
        block = head[eol:-2]  # b"\r\nName: v\r\n...\r\n": every field line starts with CRLF
        if side.is_request == line.startswith(b"HTTP/") and self._can_swap():
            self._swap_roles(out)  # the guessed roles were wrong: this side sends the other kind
        side.wire = wire
        side.body_bytes = 0
        if side.start_ns < 0:
            side.start_ns = ts
        if side.is_request:
            self._request_head(side, line, block, wire, ts, out)
        else:
            self._response_head(side, line, block, wire, ts, out)

    def _request_head(
        self, side: _Side, line: bytes, block: bytes, hlen: int, ts: int, out: list[Message]
    ) -> None:
        # the conformant line, inline (the per-request path); anything else goes to the lenient parser
        sp1 = line.find(b" ")
        sp2 = line.rfind(b" ")
        method, vraw = line[:sp1], line[sp2 + 1 :]
        version = _VERSIONS.get(vraw)
        if (
            version is not None
            and 0 < sp1 < sp2 - 1
            and sp1 <= MAX_METHOD
            and sp2 <= MAX_START_LINE
            and not method.translate(None, _TCHAR)
            and line.find(b" ", sp1 + 1) == sp2  # no blank inside the target
        ):
            # sliced only once sp1 < sp2 holds: with one blank (`GET/ HTTP/1.1`) sp1 == sp2, and mypyc's
            # bytes slice raises SystemError ("Negative size passed to PyBytes_FromStringAndSize") on a
            # start past the end, where Python's gives b""
            target = line[sp1 + 1 : sp2]
        else:
            method, target, vraw, malformed = _request_line(line)
            version = _VERSIONS.get(vraw)
            if version is None:
                version = _lenient_version(vraw) if malformed else _other_version(vraw)
            if malformed:
                side.flags |= Flag.MALFORMED
        length, chunked, conn, host, up, tp, tstate, ctype = _scan(block, self._opts.capture_body > 0)
        if chunked is False:
            raise DecodeError("unsupported transfer-coding in request")  # RFC 9112 §6.3 item 4: 400
        upgrade = b""
        if method == b"CONNECT":
            upgrade = b"connect"
        elif up and b"upgrade" in conn:
            upgrade = up.split(b",")[0].strip().split(b"/")[0]
        trace = parse_traceparent(tp, tstate) if tp is not None else None
        self._methods.push((method, upgrade))
        side.head = (
            method.decode("latin-1"),
            target.decode("utf-8", "replace"),  # at most MAX_START_LINE bytes (see _request_line)
            version,
            host.decode("utf-8", "replace") if host is not None else None,
            block,
            hlen,
            bool(chunked),
            _closes(version, conn) or not vraw,  # no version: HTTP/0.9 style, the server closes
            trace,
            upgrade,
        )
        side.capture = bytearray() if self._opts.capture_body and _textual(ctype) else None
        if chunked:
            side.state = State.CHUNK_SIZE
        elif length:
            side.state = State.BODY
            side.remaining = length
        else:
            self._finish(side, ts, out)

    def _answered(self) -> tuple[bytes, bytes]:
        """(method, upgrade token) of the request the next response answers; empty when it is not known
        (joined mid-stream, or the request was beyond the bound: its answer is framed as a GET's)."""
        methods = self._methods
        if not methods:
            return b"", b""
        if methods.untracked_due() is not None:
            methods.drop_answer()
            return b"", b""
        return methods.popleft()

    def _response_head(
        self, side: _Side, line: bytes, block: bytes, hlen: int, ts: int, out: list[Message]
    ) -> None:
        parts = line.split(b" ", 2)
        vraw = parts[0]
        version = _VERSIONS.get(vraw)
        if version is None:
            version = _other_version(vraw)
        code_raw = parts[1] if len(parts) > 1 else b""
        if len(code_raw) != 3 or not code_raw.isdigit() or code_raw[0] == 0x30:
            raise DecodeError("bad status code")
        code = int(code_raw)
        if code < 200 and code != 101:
            side.interim.append(code)  # interim: the exchange goes on (RFC 9110 §15.2)
            side.start_ns = -1
            side.wire = 0
            return
        length, chunked, conn, _host, up, _tp, _ts, ctype = _scan(block, self._opts.capture_body > 0)
        method, upgrade = self._answered()
        reason = parts[2].decode("utf-8", "replace") if len(parts) > 2 else ""
        side.head = (code, reason, version, block, hlen, bool(chunked), _closes(version, conn))
        side.capture = bytearray() if self._opts.capture_body and _textual(ctype) else None
        if code == 101:
            token = up or upgrade
            self._finish(side, ts, out)
            self._handover = (token.split(b",")[0].strip().split(b"/")[0].decode("latin-1"), out.pop())
            for s in self._sides:
                s.state = State.DEAD
            return
        if method == b"CONNECT" and code < 300:
            # the tunnel is open: what it carries is decided by the client's first bytes (`_tunnel`); the
            # client's bytes held while the answer was awaited stay in its buffer
            self._finish(side, ts, out)
            for s in self._sides:
                s.state = State.TUNNEL
            self._tunnel_due = True
            return
        if upgrade:
            self._resume_client(ts, out)  # the upgrade was refused: the held client bytes are HTTP again
        if method == b"HEAD" or code == 204 or code == 304:
            self._finish(side, ts, out)
        elif chunked:
            side.state = State.CHUNK_SIZE
        elif chunked is False:
            side.state = State.CLOSE  # an unknown final coding: the body runs to the close (§6.3 item 4)
            side.last_ns = ts
        elif length is None:
            side.state = State.CLOSE
            side.last_ns = ts
        elif length:
            side.state = State.BODY
            side.remaining = length
        else:
            self._finish(side, ts, out)

    # -- bodies ----------------------------------------------------------------------------------------------
    def _on_body(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        avail = len(data) - pos
        r = side.remaining
        if avail < r:
            side.remaining = r - avail
            side.body_bytes += avail
            side.wire += avail
            side.last_ns = ts
            if side.capture is not None:
                self._capture(side, data[pos:])
            return len(data)
        side.body_bytes += r
        side.wire += r
        if side.capture is not None:
            self._capture(side, data[pos : pos + r])
        self._finish(side, ts, out)
        return pos + r

    def _on_close(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        avail = len(data) - pos
        side.body_bytes += avail
        side.wire += avail
        if side.capture is not None:
            self._capture(side, data[pos:])
        side.last_ns = ts  # the EOF that completes the body comes later; the body ended here
        return len(data)

    def _on_chunk_size(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        side.last_ns = ts
        window = data[pos : pos + 64].tobytes()  # size lines are short; look further only when needed
        eol = window.find(b"\n")
        if eol < 0 and len(window) == 64:
            window = data[pos : pos + MAX_CHUNK_LINE].tobytes()
            eol = window.find(b"\n")
        if eol < 0:
            side.buf += window
            if len(side.buf) > MAX_CHUNK_LINE:
                raise DecodeError("chunk size line too long")
            side.wire += len(window)
            return pos + len(window)
        line = bytes(side.buf) + window[:eol] if side.buf else window[:eol]
        side.buf.clear()
        side.wire += eol + 1
        size_raw = line.split(b";", 1)[0].strip()
        try:
            size = int(size_raw, 16)
        except ValueError:
            raise DecodeError("bad chunk size", size_raw[:20].decode("latin-1")) from None
        if size < 0 or len(size_raw) > 16 or size_raw.startswith((b"+", b"-", b"0x", b"0X")):
            raise DecodeError("bad chunk size", size_raw[:20].decode("latin-1"))
        if size == 0:
            side.state = State.TRAILER
        else:
            side.remaining = size
            side.state = State.CHUNK_DATA
        return pos + eol + 1

    def _on_chunk_data(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        avail = len(data) - pos
        r = side.remaining
        if avail < r:
            side.remaining = r - avail
            side.body_bytes += avail
            side.wire += avail
            if side.capture is not None:
                self._capture(side, data[pos:])
            return len(data)
        side.body_bytes += r
        side.wire += r
        if side.capture is not None:
            self._capture(side, data[pos : pos + r])
        side.remaining = 0
        side.state = State.CHUNK_CRLF
        return pos + r

    def _on_chunk_crlf(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        # CRLF after chunk data; may arrive split ("\r" | "\n"). side.remaining counts the CR seen.
        b = data[pos]
        if b == 0x0D and side.remaining == 0:
            side.remaining = 1
            side.wire += 1
            return pos + 1
        if b == 0x0A:
            side.remaining = 0
            side.wire += 1
            side.state = State.CHUNK_SIZE
            return pos + 1
        raise DecodeError("missing CRLF after chunk data")

    def _on_trailer(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        buf = side.buf
        old = len(buf)
        buf += data[pos : pos + MAX_HEAD - old]
        if buf.startswith(b"\r\n") or buf.startswith(b"\n"):
            end = 2 if buf[0] == 0x0D else 1
        else:
            end = self._find_head_end(buf, max(0, old - 3))
            if end < 0:
                if len(buf) >= MAX_HEAD:
                    raise DecodeError("trailer section too large")
                side.wire += len(buf) - old
                return len(data)
        consumed = end - old
        side.wire += consumed
        buf.clear()
        self._finish(side, ts, out)
        return pos + consumed

    def _on_paused(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        if len(side.buf) + len(data) - pos > MAX_PAUSED:
            raise DecodeError("too much data while an upgrade is pending")
        side.buf += data[pos:]
        return len(data)

    def _on_dead(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        return len(data)

    def _on_tunnel(self, side: _Side, data: memoryview, pos: int, ts: int, out: list[Message]) -> int:
        if len(side.buf) + len(data) - pos > MAX_PAUSED:
            # nothing recognisable came first (a server-first protocol, say): stop instead of holding more
            self._stop_tunnel(ts, out)
            return len(data)
        side.buf += data[pos:]
        self._tunnel_due = True
        return len(data)

    def _tunnel(self, ts: int, out: list[Message]) -> None:
        """A CONNECT tunnel is open: hand the connection to what it carries, once the client's first bytes
        say what that is — a TLS ClientHello (an encrypted handshake record), the HTTP/2 preface (h2c),
        HTTP/1 requests (decoded here, as before the tunnel) — or stop decoding it."""
        client, server = self._sides
        first = bytes(client.buf[:MAX_START_LINE])
        if not first:
            if server.buf and not _may_be_settings(server.buf):
                # the far end spoke first (MySQL's greeting): a server-first protocol, none this decoder
                # follows. Stop now, with the server's bytes only, so the detectors see them before the
                # client's answer (each is fed in order from here: classify.TunnelDetector)
                self._stop_tunnel(ts, out, b"", bytes(server.buf))
            return
        target = ""
        if tls.starts_client_hello(first):
            target = "tls"
        elif first[:1] == b"P" and H2_PREFACE.startswith(first[:24]):
            if len(first) < len(H2_PREFACE):
                return  # the preface is still coming
            target = "h2c-prior-knowledge"
        elif len(first) < 6 and first[0] == 22:
            return  # may still become a ClientHello
        elif b"\n" not in first and len(first) < MAX_START_LINE and _METHOD_AT.match(first):
            return  # may still become a request line
        elif _REQUEST_AT.match(first):
            # plain HTTP/1 to the tunnel's far end: decode it as this connection's own traffic
            held = bytes(client.buf), bytes(server.buf)
            for s in self._sides:
                s.buf.clear()
                s.state = State.HEAD
                s.synced = True
            self._run(client, memoryview(held[0]), ts, out)
            if held[1]:
                self._run(server, memoryview(held[1]), ts, out)
            return
        if not target:
            self._stop_tunnel(ts, out, bytes(client.buf), bytes(server.buf))  # the session may detect it
            return
        for s in self._sides:
            s.state = State.DEAD
        self._pass_on(target, bytes(client.buf), bytes(server.buf), None, ts, out)

    # -- completion, upgrades --------------------------------------------------------------------------------
    def _capture(self, side: _Side, data: memoryview) -> None:
        cap = side.capture
        assert cap is not None
        room = self._opts.capture_body - len(cap)
        if room > 0:
            cap += data[:room]

    def _finish(self, side: _Side, ts: int, out: list[Message]) -> None:
        """The message under construction is complete; its last byte arrived at `ts`."""
        h = side.head
        body = bytes(side.capture) if side.capture is not None else None
        start = side.start_ns if side.start_ns >= 0 else ts
        msg: Message
        # positional construction: a third of the cost of keywords on this per-message path (_values.py)
        if side.is_request:
            method, target, version, host, block, hlen, chunked, close, trace, upgrade = h
            msg = Request(
                start, ts, side.wire, side.flags,
                method, target, version, host, block, hlen, side.body_bytes, chunked, close, trace, body,
                self._opts.redact, self._opts.redact_query,
            )  # fmt: skip
            # after an Upgrade or CONNECT request, hold the client's bytes until the server answers
            side.state = State.PAUSED if upgrade else State.HEAD
            self._requests += 1
        else:
            code, reason, version, block, hlen, chunked, close = h
            interim = side.interim
            msg = Response(
                start, ts, side.wire, side.flags,
                code, reason, version, block, hlen, side.body_bytes, chunked, close,
                tuple(interim) if interim else (), body, self._opts.redact, self._opts.redact_query,
            )  # fmt: skip
            if interim:
                interim.clear()
            side.state = State.HEAD
            self._responses += 1
        side.flags = 0
        side.start_ns = -1
        side.capture = None
        side.remaining = 0
        side.last_ns = -1
        self._produced += 1
        early = self._early
        if side.is_request:
            out.append(msg)
            if early is not None:  # the answer that came before this request's body ended
                self._early = None
                out.append(early)
        elif self._responses > self._requests and code != 101 and self._client_busy():
            # it answers the request still coming (its body, or the rest of its head: nginx refuses a
            # too large header before the blank line): hold it until that request is complete
            if early is not None:
                out.append(early)  # a second answer to one request: the first goes as it is
            self._early = msg
        else:
            out.append(msg)

    def _client_busy(self) -> bool:
        """The client is in the middle of a request: its body, or a head that has begun."""
        client = self._sides[0]
        state = client.state
        return state in _BODY_STATES or (state is State.HEAD and client.synced and bool(client.buf))

    def _resume_client(self, ts: int, out: list[Message]) -> None:
        client = self._sides[0]
        if client.state is not State.PAUSED:
            return
        held = bytes(client.buf)
        client.buf.clear()
        client.state = State.HEAD
        if held:
            self._run(client, memoryview(held), ts, out)

    def _emit_handover(self, side: _Side, rest: bytes, ts: int, out: list[Message]) -> None:
        """The connection switched protocols: pass on what each side sent after the switch point."""
        assert self._handover is not None
        target, response = self._handover
        self._handover = None
        client = self._sides[0]
        if side is client:
            server = self._sides[1]
            held = bytes(server.buf) if target == "h2c-prior-knowledge" else b""  # its early SETTINGS
            client_data, server_data = bytes(side.buf) + rest, held
        else:
            client_data, server_data = bytes(client.buf), rest
        self._pass_on(target, client_data, server_data, response, ts, out)

    def _pass_on(
        self,
        target: str,
        client_data: bytes,
        server_data: bytes,
        response: Message | None,
        ts: int,
        out: list[Message],
    ) -> None:
        """Hand the connection over with the bytes each side sent after the switch point."""
        for s in self._sides:
            s.buf.clear()
        out.append(
            HandOver(
                start_ns=ts,
                end_ns=ts,
                size=0,
                flags=0,
                target=target,
                client_data=client_data,
                server_data=server_data,
                response=response,
            )
        )

    def _stop_tunnel(
        self, ts: int, out: list[Message], client_data: bytes = b"", server_data: bytes = b""
    ) -> None:
        """The tunnel carries nothing decoded here (or could not be followed): stop decoding it, with what
        it carried so far (the session offers that to the detectors)."""
        out.append(
            StopDecoding(
                start_ns=ts,
                end_ns=ts,
                size=0,
                flags=0,
                reason=TUNNEL,
                client_data=client_data,
                server_data=server_data,
            )
        )
        for s in self._sides:
            s.state = State.DEAD
            s.buf.clear()


def _h2_settings(chunk: bytes | bytearray) -> bool:
    """An HTTP/2 SETTINGS frame header (type 4, no flags, stream 0, length a multiple of 6) starts `chunk`."""
    return (
        len(chunk) >= 9
        and chunk[3] == 4
        and chunk[4] == 0
        and chunk[5:9] == b"\0\0\0\0"
        and int.from_bytes(chunk[:3], "big") % 6 == 0
    )


def _request_start(line: bytes | bytearray, complete: bool) -> bool:
    """Whether `line` (a request line, or its start when not `complete`) can be a request line, leniently:
    a method token (after stray blanks), then a blank, a `/`, or the end. Binary and TLS bytes cannot."""
    s = bytes(line).rstrip(b"\r").lstrip(b" \t")
    rest = s.lstrip(_TCHAR)
    mlen = len(s) - len(rest)
    if not mlen:
        return not s and not complete  # nothing but blanks so far: undecided
    return mlen <= MAX_METHOD and (not rest or rest[0] in _AFTER_METHOD)


def _request_line(line: bytes) -> tuple[bytes, bytes, bytes, bool]:
    """(method, target, version token, malformed) of a request line (CR/LF removed).

    RFC 9112 §3 first (one SP each side of the target, HTTP/x.y); otherwise leniently, as servers answer
    what clients send: a blank missing after the method (`GET/ HTTP/1.1`) or before the version
    (`GET /HTTP/1.1`: the target is taken as sent, there is no version, as nginx reads it), a cut version
    (`HTTP/1.`), an empty target, blanks doubled, leading or trailing. Only a line with no method token at
    its start (binary, TLS) raises.
    """
    sp1 = line.find(b" ")
    sp2 = line.rfind(b" ")
    if 0 < sp1 < sp2 - 1 and sp1 <= MAX_METHOD:
        method, target, vraw = line[:sp1], line[sp1 + 1 : sp2], line[sp2 + 1 :]
        if (vraw in _VERSIONS or _VERSION_TOKEN.fullmatch(vraw)) and not method.translate(None, _TCHAR):
            return method, target[:MAX_START_LINE], vraw, b" " in target
    s = line.strip(b" \t")
    rest = s.lstrip(_TCHAR)
    mlen = len(s) - len(rest)
    if not mlen or mlen > MAX_METHOD or (rest and rest[0] not in _AFTER_METHOD) or s[:5] == b"HTTP/":
        # no method token, or a status line where a request belongs
        raise DecodeError("bad method", s[:MAX_METHOD].decode("latin-1"))
    method = s[:mlen]
    rest = rest.lstrip(b" \t")
    sp = max(rest.rfind(b" "), rest.rfind(b"\t"))
    last = rest[sp + 1 :]
    if last[:5].upper() == b"HTTP/":
        target, vraw = (rest[:sp].rstrip(b" \t") if sp >= 0 else b""), last
    else:
        target, vraw = rest, b""  # no version: HTTP/0.9 style, or glued to the target
    return method, target[:MAX_START_LINE], vraw, True


def _lenient_version(vraw: bytes) -> str:
    """The version token of a malformed request line, as sent (bounded): "" when there was none."""
    if _VERSION_TOKEN.fullmatch(vraw):
        return vraw.decode()
    return vraw[:MAX_VERSION].decode("latin-1")


def _other_version(vraw: bytes) -> str:
    """An HTTP version other than 1.0/1.1 on a start line (HTTP/1.2, HTTP/2.0 from a confused client)."""
    if (
        len(vraw) == 8
        and vraw.startswith(b"HTTP/")
        and vraw[5:6].isdigit()
        and vraw[6:7] == b"."
        and vraw[7:].isdigit()
    ):
        return vraw.decode()
    raise DecodeError("bad http version", vraw[:16].decode("latin-1"))


_BODY_STATES = frozenset({State.BODY, State.CHUNK_SIZE, State.CHUNK_DATA, State.CHUNK_CRLF, State.TRAILER})
_Handler = Callable[[Http1Decoder, _Side, memoryview, int, int, list[Message]], int]
_HANDLERS: dict[State, _Handler] = {
    State.HEAD: Http1Decoder._on_head,
    State.BODY: Http1Decoder._on_body,
    State.CHUNK_SIZE: Http1Decoder._on_chunk_size,
    State.CHUNK_DATA: Http1Decoder._on_chunk_data,
    State.CHUNK_CRLF: Http1Decoder._on_chunk_crlf,
    State.TRAILER: Http1Decoder._on_trailer,
    State.CLOSE: Http1Decoder._on_close,
    State.PAUSED: Http1Decoder._on_paused,
    State.DEAD: Http1Decoder._on_dead,
    State.TUNNEL: Http1Decoder._on_tunnel,
}


def new_decoder(ctx: DecoderContext) -> Http1Decoder:
    """Registry factory."""
    return Http1Decoder(ctx)
