"""PostgreSQL decoder (frontend/backend protocol 3.0, PostgreSQL docs chapter 55), both directions.

Theory of operation
-------------------
Each direction is split into messages by their length words; only the first bytes of a message that the
record needs are kept (a statement up to the cap, names, a command tag, error fields): DataRow, CopyData
and every other body is counted and skipped, so a 10 000-row result or a 1 GB bytea costs no buffering.
Every length is checked against what PostgreSQL itself accepts for that message type, and an unknown type
byte is garbage: a wild length is a DecodeError, never a 1 GB wait.

In normal operation the whole messages of a segment are dispatched straight from it (`_whole`), and a run
of DataRows after the first is only counted; the general loop handles messages split across segments.

The backend answers the frontend's messages in order, so the decoder keeps the frontend messages that are
waiting for an answer (`_Item`s) and pairs them itself, the way the server processes them; it emits each
request immediately before its response (or alone, when the server will never answer it):

* simple Query: one roundtrip per statement result (CommandComplete, EmptyQueryResponse, ErrorResponse),
  rows counted from DataRow; the statement text is the matching statement of the query string;
* extended query: every Execute pairs with its result; the Parse/Bind/Describe messages before it that
  were acknowledged (ParseComplete, BindComplete, RowDescription/NoData) fold into its request; a cycle up
  to Sync without an Execute is one roundtrip named after its first message; after an ErrorResponse the
  server skips everything up to Sync: the skipped Executes are `unanswered` (SkippedRequest);
* statement text reaches an Execute through its portal (Bind) and prepared statement (Parse), named or
  unnamed, in bounded caches; a miss (prepared before the capture began, or evicted) is counted;
* COPY IN/OUT: CopyData messages and bytes are counted into the statement's request (in) or response
  (out); the tag gives the rows;
* start-up: SSLRequest / GSSENCRequest and their one-byte answer (`N`: go on in clear; `S`/`G`: encrypted,
  decoding stops, counted), StartupMessage, the authentication exchange (secrets never kept),
  ParameterStatus, BackendKeyData, up to ReadyForQuery or ErrorResponse: one `handshake` record;
  CancelRequest (a connection of its own) and Terminate are `oneway`; NoticeResponse,
  NotificationResponse and ErrorResponses nobody asked for are `oneway` server messages.

Resynchronisation: joined mid-stream (or after a reset), each side looks for a plausible message header
(a type byte valid for that direction and a length within its bounds, followed by plausible headers up to
the end of the segment). The backend side is then aligned with the pending frontend messages when its
first message is a plausible first answer to the oldest one; otherwise its messages are discarded up to
the next ReadyForQuery, which ends the cycle the oldest pending messages belong to. Nothing is paired
across a point where alignment was lost; on a reset, what was complete is kept and what was waiting for
an answer is reported `unanswered` at once. An answer to nothing pending is counted as an orphan response.

Pipelining deeper than MAX_PENDING frontend messages (protocols/base.py): the messages beyond it are not
tracked (no record, counted); their place is kept as the number of ReadyForQuery they are owed, and
backend messages up to those are dropped, never paired with later messages.

What it deliberately ignores: parameter values (Bind), column descriptions, row contents, replication
(CopyBoth is counted as COPY), the v3.2 protocol's longer cancel keys (accepted, never kept).

Wire format (§55.7):

    untyped (first client message)  Int32 length | Int32 code (196608 = 3.0, 80877103 SSL, 80877104 GSS,
                                    80877102 cancel) | body
    typed                            Byte1 type | Int32 length (counts itself, not the type) | body
    SSL/GSS answer                   Byte1 'S' | 'N' | 'G'
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from typing import Final, NoReturn

from packetd.protocols.base import (
    MAX_PENDING,
    NO_MESSAGES,
    DecodeError,
    DecoderContext,
    Direction,
    Flag,
    Message,
    StopDecoding,
    SyncLost,
)
from packetd.protocols.pending import PendingQueue
from packetd.protocols.postgresql.messages import (
    ClientNotice,
    LostRequest,
    Request,
    Response,
    ServerNotice,
    SkippedRequest,
    Startup,
    StartupResult,
)
from packetd.protocols.postgresql.options import PostgresOptions
from packetd.protocols.postgresql.phases import SIDES, Conn, Event, Phase, step
from packetd.protocols.sqltext import split_statements

# enum members as module constants: reading `Phase.READY` goes through the enum class (~0.25 us on CPython
# 3.11, ten times a global) and the framing loop tests a phase or a direction on every message
_STARTUP, _ANSWER, _AUTH, _READY, _DEAD = Phase.STARTUP, Phase.ANSWER, Phase.AUTH, Phase.READY, Phase.DEAD
_C2S, _S2C = Direction.C2S, Direction.S2C

SMALL: Final = 10_000  # PQ_SMALL_MESSAGE_LIMIT: the server refuses longer messages of the small types
LARGE: Final = 0x3FFFFFFF  # PQ_LARGE_MESSAGE_LIMIT (MaxAllocSize - 1): the longest message PostgreSQL accepts
MAX_STARTUP: Final = 10_000  # MAX_STARTUP_PACKET_LENGTH
# bytes kept of a statement / portal / channel name (PostgreSQL's own NAMEDATALEN is 64)
MAX_NAME: Final = 256
MAX_FIELDS: Final = 4096  # bytes kept of an ErrorResponse / NoticeResponse body
MAX_ERROR: Final = 256  # characters kept of an error message
MAX_STATEMENTS: Final = 256  # prepared statements remembered per connection (name → text)
MAX_PORTALS: Final = 64  # portals remembered per connection (name → statement name)
MAX_SYNC_TRIES: Final = 512  # candidate header positions tried per segment while resynchronising
MAX_SYNC_CHAIN: Final = 64  # headers followed from a candidate before it is believed

_I32 = struct.Struct(">i")
_TYPED = struct.Struct(">Bi")
_CODE_SSL, _CODE_GSS, _CODE_CANCEL = 80877103, 80877104, 80877102
_AUTH_NAMES = {0: "trust", 2: "kerberos5", 3: "password", 5: "md5", 7: "gss", 9: "sspi", 10: "sasl"}
_TAG_WITH_OID = "INSERT"


# type byte → (minimum length, maximum length, body bytes kept): the length counts itself (4 bytes)
_Bounds = tuple[int, int, int]
_STATEMENT: Final = -1  # "kept" marker: the statement cap (+ names) decides
_FRONTEND: dict[int, _Bounds] = {
    ord("Q"): (5, LARGE, _STATEMENT),
    ord("P"): (8, LARGE, _STATEMENT),
    ord("B"): (12, LARGE, 2 * MAX_NAME + 2),
    ord("E"): (9, SMALL, MAX_NAME + 1),
    ord("D"): (6, SMALL, MAX_NAME + 2),
    ord("C"): (6, SMALL, MAX_NAME + 2),
    ord("S"): (4, 4, 0),
    ord("H"): (4, 4, 0),
    ord("X"): (4, 4, 0),
    ord("F"): (10, LARGE, 0),
    ord("d"): (4, LARGE, 0),
    ord("c"): (4, 4, 0),
    ord("f"): (5, SMALL, 0),
    ord("p"): (4, LARGE, 64),  # password / SASL / GSS response: only a SASL mechanism name is ever read
}
_BACKEND: dict[int, _Bounds] = {
    ord("R"): (8, SMALL, 512),
    ord("S"): (6, SMALL, 512),
    ord("K"): (12, 4 + 4 + 256, 4),
    ord("Z"): (5, 5, 1),
    ord("1"): (4, 4, 0),
    ord("2"): (4, 4, 0),
    ord("3"): (4, 4, 0),
    ord("n"): (4, 4, 0),
    ord("I"): (4, 4, 0),
    ord("s"): (4, 4, 0),
    ord("c"): (4, 4, 0),
    ord("t"): (6, LARGE, 0),
    ord("T"): (6, LARGE, 0),
    ord("D"): (6, LARGE, 0),
    ord("C"): (5, SMALL, 128),
    ord("E"): (5, LARGE, MAX_FIELDS),
    ord("N"): (5, LARGE, MAX_FIELDS),
    ord("A"): (10, LARGE, 4 + MAX_NAME),
    ord("G"): (7, SMALL, 0),
    ord("H"): (7, SMALL, 0),
    ord("W"): (7, SMALL, 0),
    ord("d"): (4, LARGE, 0),
    ord("V"): (8, LARGE, 0),
    ord("v"): (12, SMALL, 0),
}
_FRONTEND_START = re.compile(rb"[QPBEDCSHXFdcfp]\x00")
_BACKEND_START = re.compile(rb"[RSKZ123nIsctTDCENAGHWdVv]\x00")
# the backend messages that can begin the answer to each frontend message (for mid-stream alignment)
_FIRST_ANSWERS = {
    "Parse": b"1E",
    "Bind": b"2E",
    "Describe": b"tTnE",
    "Execute": b"DCIsEGHW",
    "Close": b"3E",
    "Sync": b"ZE",
    "Query": b"TDCIEGHWN",
    "FunctionCall": b"VE",
}
_ENDS_CYCLE = frozenset({"Sync", "Query", "FunctionCall"})
_RESULTS = frozenset(b"CIsV")  # CommandComplete, EmptyQueryResponse, PortalSuspended, FunctionCallResponse


class _Item:
    """A frontend message waiting for the backend's answer."""

    __slots__ = (
        "end",
        "flags",
        "op",
        "portal",
        "results",
        "size",
        "start",
        "statement",
        "stmt_name",
        "truncated",
    )

    def __init__(self, op: str, start: int, end: int, size: int, flags: int) -> None:
        self.op = op
        self.start = start
        self.end = end
        self.size = size
        self.flags = flags
        self.statement: bytes | None = None
        self.truncated = False
        self.stmt_name: str | None = None
        self.portal: str | None = None
        self.results = 0  # statement results reported so far (Query)


class _Side:
    """One direction's message framing."""

    __slots__ = ("body", "flags", "hdr", "keep", "left", "mlen", "mtype", "start", "synced")

    def __init__(self, synced: bool) -> None:
        self.synced = synced
        self.hdr = bytearray()  # a header split across segments
        self.mtype = -1  # type of the message whose body is being read (-1: none; 0: untyped)
        self.mlen = 0
        self.left = 0  # body bytes still to come
        self.keep = 0  # body bytes wanted
        self.body = bytearray()
        self.start = -1
        self.flags = 0


class _Handshake:
    __slots__ = (
        "app",
        "auth",
        "database",
        "encryption",
        "end",
        "flags",
        "gss",
        "last_auth",
        "message",
        "pid",
        "protocol",
        "r_end",
        "r_size",
        "r_start",
        "size",
        "ssl",
        "start",
        "user",
        "version",
    )

    def __init__(self, start: int) -> None:
        self.start = start
        self.end = start
        self.size = 0
        self.flags = 0
        self.message = "StartupMessage"
        self.user: str | None = None
        self.database: str | None = None
        self.app: str | None = None
        self.protocol = "3.0"
        self.ssl = False
        self.gss = False
        self.encryption: str | None = None  # the one-byte answer to SSL/GSS requests
        self.auth: str | None = None
        self.last_auth = -1
        self.version: str | None = None
        self.pid: int | None = None
        self.r_start = -1
        self.r_size = 0
        self.r_end = -1  # the last start-up message the server sent after the StartupMessage (-1: none)


def _bad_header(t: int, mlen: int, bound: _Bounds | None) -> NoReturn:
    """The DecodeError of a typed header whose type is unknown or whose length is out of its bounds."""
    if bound is None:
        raise DecodeError("unknown message type", chr(t))
    raise DecodeError("bad message length", f"{chr(t)} {mlen}")


def _cstr(body: bytes, pos: int) -> tuple[bytes, int, bool]:
    """A NUL-terminated string at `pos`: (value, position after the NUL, complete)."""
    end = body.find(b"\x00", pos)
    if end < 0:
        return body[pos:], len(body), False
    return body[pos:end], end + 1, True


def _name(raw: bytes) -> str:
    return raw[:MAX_NAME].decode("utf-8", "replace")


def _fields(body: bytes) -> tuple[str | None, str | None, str | None]:
    """ErrorResponse / NoticeResponse fields → (severity, sqlstate, message); V is preferred over S."""
    severity = sqlstate = message = None
    localized = None
    for part in body.split(b"\x00"):
        if not part:
            continue
        code = part[0]
        if code == 0x56:  # V: non-localised severity (9.6+)
            severity = part[1:].decode("utf-8", "replace")
        elif code == 0x53:  # S
            localized = part[1:].decode("utf-8", "replace")
        elif code == 0x43:  # C
            sqlstate = part[1:].decode("ascii", "replace")
        elif code == 0x4D:  # M
            message = part[1 : MAX_ERROR * 4 + 1].decode("utf-8", "replace")[:MAX_ERROR]
    return severity or localized, sqlstate, message


def _tag(raw: bytes) -> tuple[str, str, int | None]:
    """CommandComplete tag → (tag, command, rows): "INSERT 0 5" → INSERT, 5; "CREATE TABLE" → no rows."""
    tag = raw.split(b"\x00", 1)[0].decode("utf-8", "replace")
    words = tag.split()
    rows = None
    if words and words[-1].isdigit():
        rows = int(words[-1])
        words = words[:-1]
        if words and words[0] == _TAG_WITH_OID and len(words) == 2 and words[1].isdigit():
            words = words[:1]  # "INSERT oid rows"
    return tag, " ".join(words), rows


class PostgresDecoder:
    """Decoder for one PostgreSQL connection (see module docstring)."""

    def __init__(self, ctx: DecoderContext | None = None) -> None:
        ctx = ctx or DecoderContext()
        self._opts: PostgresOptions = (
            ctx.options if isinstance(ctx.options, PostgresOptions) else PostgresOptions()
        )
        self._cap = max(self._opts.max_statement, 0)
        midstream = ctx.midstream
        self._c = _Side(not midstream)
        self._s = _Side(not midstream)
        # the connection's phase (phases.py: every transition is in its table); the per-direction phases
        # are read on every message, so they are kept as attributes, set only by _go
        self._conn = Conn.READY if midstream else Conn.STARTUP
        self._cphase, self._sphase = SIDES[self._conn]
        self._aligned = not midstream
        self._midstream = Flag.MIDSTREAM if midstream else 0
        self._hs: _Handshake | None = None
        # frontend messages waiting for an answer. Beyond MAX_PENDING they are not tracked (no record,
        # counted `pending_overflow`); their place is an untracked run that owes one ReadyForQuery per cycle
        # end (Sync, Query, FunctionCall) it holds: backend messages are dropped up to it (counted
        # `untracked_replies`), so no later message is paired with them (PendingQueue)
        self._items: PendingQueue[_Item] = PendingQueue(MAX_PENDING)
        self._statements: dict[str, tuple[bytes, bool]] = {}
        self._portals: dict[str, str] = {}
        # events counted, not recorded: straight into the protocol's counters when the session gives them
        self.counters: dict[str, int] = ctx.counters if ctx.counters is not None else {}
        # acknowledged frontend messages not reported yet (they fold into the next report)
        self._acc_start = -1
        self._acc_size = 0
        self._acc_msgs = 0
        self._acc_op = ""
        self._acc_flags = 0
        self._acc_statement: tuple[bytes | None, bool, str | None, str | None] | None = None
        self._cycle_reported = False
        self._skipping = False  # an error was answered: frontend messages up to the next Sync are discarded
        self._orphan_open = False  # backend messages of an answer to nothing pending were seen, no result yet
        # backend messages of the answer under construction
        self._r_start = -1
        self._r_size = 0
        self._r_flags = 0
        self._rows = 0
        self._copy_dir: str | None = None
        self._copy_msgs = 0
        self._copy_bytes = 0
        # CopyData sent by the client for the statement being answered
        self._cin_msgs = 0
        self._cin_bytes = 0
        self._cin_size = 0

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # -- the Decoder interface ---------------------------------------------------------------------------
    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        if not data:
            return NO_MESSAGES
        out: list[Message] = []
        try:
            if direction is _C2S:
                if self._cphase is not _DEAD:
                    self._read(self._c, data.tobytes(), ts_ns, out, True)
            elif self._sphase is not _DEAD:
                self._read(self._s, data.tobytes(), ts_ns, out, False)
        except DecodeError as exc:
            # what was complete before the garbage is not lost with the reset, nor what was waiting for an
            # answer: the fresh decoder cannot pair it
            self._flush_pending(out, lost=True)
            exc.messages = out
            raise
        return out

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]:
        s = self._c if direction is _C2S else self._s
        if s.mtype >= 0 and s.left >= nbytes and len(s.body) >= s.keep:
            # inside a body whose kept prefix is complete: framing survives
            s.left -= nbytes
            s.flags |= Flag.GAP
            out: list[Message] = []
            if not s.left:
                self._complete(s, ts_ns, out, direction is _C2S)
            return out
        out = [SyncLost(start_ns=ts_ns, end_ns=ts_ns, size=0, flags=0, direction=direction)]
        # lost frontend messages would shift every later answer; lost backend messages likewise
        self._c = _Side(False)
        self._s = _Side(False)
        self._c.flags = self._s.flags = Flag.GAP
        if direction is _C2S:
            out.append(SyncLost(start_ns=ts_ns, end_ns=ts_ns, size=0, flags=0, direction=_S2C))
        self._forget(ts_ns)
        return out

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]:
        if direction is _C2S:
            return NO_MESSAGES  # the server may still answer: what is pending is settled at its EOF
        out: list[Message] = []
        hs = self._hs
        if hs is not None:
            self._hs = None
            out.append(self._startup_request(hs))
            if hs.encryption is not None and hs.message != "StartupMessage":
                # an SSL/GSS request answered "N", then the client went away: answered, nothing more
                out.append(
                    StartupResult(
                        hs.r_start,
                        hs.r_start,
                        hs.r_size,
                        0,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        hs.encryption,
                    )
                )
            elif hs.r_end >= 0:
                # the server answered the StartupMessage (an authentication request) and the client went
                # away, as psql does to prompt for a password and connect again: a handshake, cut short
                out.append(
                    StartupResult(
                        hs.r_start, hs.r_end, hs.r_size, Flag.TRUNCATED, hs.auth, hs.version, hs.pid,
                        encryption=hs.encryption,
                    )
                )  # fmt: skip
            # else: the start-up was never answered; the request alone becomes `unanswered` at close
        # what the server will never answer now: pending requests become `unanswered` at close
        self._flush_pending(out)
        return out

    def _flush_pending(self, out: list[Message], lost: bool = False) -> None:
        """Report the pending frontend messages that would have been reported, and forget them: requests
        the matcher records `unanswered` at close, or (`lost`: framing is lost) `unanswered` records at
        once, so that no answer the next decoder reads is paired with them."""
        cls = LostRequest if lost else Request
        for item in self._items:
            if item.op == "Execute" or (item.op in ("Query", "FunctionCall") and not item.results):
                out.append(self._request(item, item.op, cls))
            elif item.op == "Sync" and self._acc_msgs:
                out.append(self._request(item, self._acc_op, cls))
            else:
                self._fold(item)
        self._items.clear()
        self._reset_acc()

    # -- framing ---------------------------------------------------------------------------------------------
    def _read(self, s: _Side, b: bytes, ts: int, out: list[Message], client: bool) -> None:
        n = len(b)
        pos = 0
        bounds = _FRONTEND if client else _BACKEND
        while pos < n:
            if s.mtype < 0:
                if s.synced and not s.hdr and (self._cphase if client else self._sphase) is _READY:
                    pos = self._whole(s, b, pos, ts, out, client)
                    if pos < 0:
                        return
                    if pos >= n:
                        break
                if not client and self._sphase is _ANSWER:
                    self._ssl_answer(b[pos], ts, out)
                    pos += 1
                    if self._dead(client):
                        return
                    continue
                if not s.synced:
                    pos = self._resync(s, b, pos, client)
                    if pos < 0:
                        return
                    continue
                untyped = client and self._cphase is _STARTUP
                hlen = 4 if untyped else 5
                if s.hdr:
                    take = hlen - len(s.hdr)
                    s.hdr += b[pos : pos + take]
                    pos += take if take < n - pos else n - pos
                    if len(s.hdr) < hlen:
                        return
                    hdr = bytes(s.hdr)
                    s.hdr.clear()
                    hp = 0
                elif n - pos < hlen:
                    s.hdr += b[pos:]
                    s.start = ts
                    return
                else:
                    hdr = b
                    hp = pos
                    pos += hlen
                    s.start = ts
                t, mlen, keep = self._header(hdr, hp, untyped, bounds)
                body_len = mlen - 4
                s.mtype = t
                s.mlen = mlen
                s.keep = keep if keep < body_len else body_len
                if n - pos >= body_len:  # the whole body is here: no copy beyond the kept prefix
                    body = b[pos : pos + s.keep] if s.keep else b""
                    pos += body_len
                    s.left = 0
                    self._dispatch(s, t, body, ts, out, client)
                    if self._dead(client):
                        return
                    continue
                s.left = body_len
            take = s.left if s.left < n - pos else n - pos
            want = s.keep - len(s.body)
            if want > 0:
                s.body += b[pos : pos + (want if want < take else take)]
            s.left -= take
            pos += take
            if s.left:
                return
            self._complete(s, ts, out, client)
            if self._dead(client):
                return

    def _header(self, hdr: bytes, hp: int, untyped: bool, bounds: dict[int, _Bounds]) -> tuple[int, int, int]:
        """The message header at hdr[hp:] → (type, length, body bytes wanted); DecodeError when implausible."""
        if untyped:
            (mlen,) = _I32.unpack_from(hdr, hp)
            if mlen < 8 or mlen > MAX_STARTUP:
                raise DecodeError("bad startup packet length", str(mlen))
            return 0, mlen, MAX_STARTUP
        t, mlen = _TYPED.unpack_from(hdr, hp)
        bound = bounds.get(t)
        if bound is None or mlen < bound[0] or mlen > bound[1]:
            _bad_header(t, mlen, bound)
        keep = bound[2]
        return t, mlen, (self._cap + 2 * MAX_NAME + 2 if keep == _STATEMENT else keep)

    def _whole(self, s: _Side, b: bytes, pos: int, ts: int, out: list[Message], client: bool) -> int:
        """The common case: the whole messages at b[pos:] in normal operation, dispatched straight from the
        segment (no partial-message state). Returns where the general loop takes over (a message that does
        not end in this segment, or a phase other than READY), or -1 when decoding stopped. A run of
        DataRows is counted without dispatching each: after one DataRow was counted, the next changes
        nothing but the row count and the answer's size (the checks `_backend` would repeat hold)."""
        n = len(b)
        bounds = _FRONTEND if client else _BACKEND
        statement_keep = self._cap + 2 * MAX_NAME + 2
        counted_row = False  # the previous message was a DataRow that `_backend` counted
        while n - pos >= 5:
            t, mlen = _TYPED.unpack_from(b, pos)
            bound = bounds.get(t)
            if bound is None or mlen < bound[0] or mlen > bound[1]:
                _bad_header(t, mlen, bound)
            end = pos + 1 + mlen
            if end > n:
                break
            s.start = ts
            s.mlen = mlen  # the handlers of ErrorResponse and CopyData read it
            if counted_row and t == 0x44:
                self._rows += 1
                self._r_size += mlen + 1
                pos = end
                continue
            keep = bound[2]
            if keep == _STATEMENT:
                keep = statement_keep
            cut = keep < mlen - 4
            body = b[pos + 5 : pos + 5 + keep] if cut else b[pos + 5 : end]
            pos = end
            flags = s.flags
            if flags:
                s.flags = 0
            if client:
                self._frontend(t, body, cut, mlen + 1, ts, ts, flags, out)
                phase = self._cphase
            else:
                rows = self._rows
                self._backend(t, body, mlen + 1, ts, ts, flags, out)
                counted_row = t == 0x44 and self._rows == rows + 1
                phase = self._sphase
            if phase is not _READY:
                return -1 if phase is _DEAD else pos
        return pos

    def _dead(self, client: bool) -> bool:
        return (self._cphase if client else self._sphase) is _DEAD

    def _complete(self, s: _Side, ts: int, out: list[Message], client: bool) -> None:
        body = bytes(s.body)
        s.body.clear()
        self._dispatch(s, s.mtype, body, ts, out, client)

    def _dispatch(self, s: _Side, t: int, body: bytes, ts: int, out: list[Message], client: bool) -> None:
        size = s.mlen + (1 if t else 0)
        start = s.start
        flags = s.flags
        cut = s.keep < s.mlen - 4
        s.mtype = -1
        s.flags = 0
        if client:
            self._frontend(t, body, cut, size, start, ts, flags, out)
        else:
            self._backend(t, body, size, start, ts, flags, out)

    def _resync(self, s: _Side, b: bytes, pos: int, client: bool) -> int:
        """A plausible message start in b[pos:] (what precedes it is discarded), or -1: none here."""
        pattern = _FRONTEND_START if client else _BACKEND_START
        bounds = _FRONTEND if client else _BACKEND
        for tries, m in enumerate(pattern.finditer(b, pos)):
            if tries >= MAX_SYNC_TRIES:
                break
            i = m.start()
            if self._chain(b, i, bounds):
                s.synced = True
                s.flags |= Flag.MIDSTREAM
                return i
        return -1

    @staticmethod
    def _chain(b: bytes, i: int, bounds: dict[int, _Bounds]) -> bool:
        """Plausible headers from i to the end of b (a message running past the end is fine)."""
        n = len(b)
        for _ in range(MAX_SYNC_CHAIN):
            if n - i < 5:
                return True
            t, mlen = _TYPED.unpack_from(b, i)
            bound = bounds.get(t)
            if bound is None or mlen < bound[0] or mlen > bound[1]:
                return False
            i += 1 + mlen
            if i >= n:
                return True
        return True

    # -- frontend ------------------------------------------------------------------------------------------
    def _frontend(
        self, t: int, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        phase = self._cphase
        if phase is _STARTUP:
            self._untyped(body, size, start, ts, flags, out)
            return
        if phase is _ANSWER:
            raise DecodeError("client message before the SSL/GSS answer")
        if phase is _AUTH:
            hs = self._hs
            if t == 0x58:  # Terminate: the client gives up
                out.append(ClientNotice(start, ts, size, flags, "Terminate"))
                return
            if t != 0x70 or hs is None:  # 'p'
                raise DecodeError("unexpected message during authentication", chr(t))
            hs.size += size
            hs.end = ts
            if hs.last_auth == 10 and hs.auth == "sasl":  # SASLInitialResponse: the mechanism's name
                hs.auth = _cstr(body, 0)[0][:64].decode("ascii", "replace") or "sasl"
            return
        flags |= self._midstream
        handler = _FRONTEND_HANDLERS.get(t)
        if handler is not None:
            handler(self, body, cut, size, start, ts, flags, out)

    def _go(self, event: Event) -> None:
        """Move the connection's phase (phases.py's table)."""
        self._conn = step(self._conn, event)
        self._cphase, self._sphase = SIDES[self._conn]

    def _untyped(self, body: bytes, size: int, start: int, ts: int, flags: int, out: list[Message]) -> None:
        (code,) = _I32.unpack_from(body, 0)
        hs = self._hs
        if code == _CODE_CANCEL:
            pid = _I32.unpack_from(body, 4)[0] if len(body) >= 8 else None
            out.append(ClientNotice(start, ts, size, flags, "CancelRequest", pid))
            self._go(Event.CANCEL_REQUEST)
            return
        if hs is None:
            hs = self._hs = _Handshake(start)
        hs.size += size
        hs.end = ts
        hs.flags |= flags
        if code == _CODE_SSL or code == _CODE_GSS:
            if code == _CODE_SSL:
                hs.ssl = True
                hs.message = "SSLRequest"
            else:
                hs.gss = True
                hs.message = "GSSENCRequest"
            self._go(Event.ENCRYPTION_REQUEST)
            return
        major, minor = code >> 16, code & 0xFFFF
        if major != 3:
            raise DecodeError("unsupported protocol version", f"{major}.{minor}")
        hs.message = "StartupMessage"
        hs.protocol = f"{major}.{minor}"
        pos = 4
        while pos < len(body):
            key, pos, ok = _cstr(body, pos)
            if not key or not ok:
                break
            val, pos, ok = _cstr(body, pos)
            text = val[:MAX_NAME].decode("utf-8", "replace")
            if key == b"user":
                hs.user = text
            elif key == b"database":
                hs.database = text
            elif key == b"application_name":
                hs.app = text
        if hs.database is None and hs.user is not None:
            hs.database = hs.user  # the server's default (§55.7 StartupMessage)
        self._go(Event.STARTUP_MESSAGE)

    def _statement(self, body: bytes, pos: int, cut: bool) -> tuple[bytes, bool]:
        text, _, complete = _cstr(body, pos)
        cap = self._cap
        truncated = len(text) > cap or (cut and not complete)
        return (text[:cap] if len(text) > cap else text), truncated

    def _push(self, item: _Item, out: list[Message]) -> None:
        if self._skipping and item.op != "Sync":
            # after an error the server discards every message up to the next Sync, even those the
            # client sends after the error arrived
            self._discard(item, out)
            return
        if item.op == "Sync":
            self._skipping = False
        ends = item.op in _ENDS_CYCLE
        if not self._items.push(item, answers=1 if ends else 0, open_=not ends):
            self._count("pending_overflow")
        self._midstream = 0

    def _f_query(
        self, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        item = _Item("Query", start, ts, size, flags)
        item.statement, item.truncated = self._statement(body, 0, cut)
        self._push(item, out)

    def _f_parse(
        self, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        raw, pos, _ = _cstr(body, 0)
        name = _name(raw)
        text, truncated = self._statement(body, pos, cut)
        statements = self._statements
        if name not in statements and len(statements) >= MAX_STATEMENTS:
            del statements[next(iter(statements))]
            self._count("statement_cache_evictions")
        statements[name] = (text, truncated)
        item = _Item("Parse", start, ts, size, flags)
        item.statement, item.truncated, item.stmt_name = text, truncated, name
        self._push(item, out)

    def _f_bind(
        self, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        raw, pos, _ = _cstr(body, 0)
        portal = _name(raw)
        stmt = _name(_cstr(body, pos)[0])
        portals = self._portals
        if portal not in portals and len(portals) >= MAX_PORTALS:
            del portals[next(iter(portals))]
            self._count("portal_cache_evictions")
        portals[portal] = stmt
        item = _Item("Bind", start, ts, size, flags)
        item.portal, item.stmt_name = portal, stmt
        known = self._statements.get(stmt)
        if known is not None:
            item.statement, item.truncated = known
        self._push(item, out)

    def _f_describe(
        self, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        item = _Item("Describe", start, ts, size, flags)
        name = _name(_cstr(body, 1)[0])
        if body[:1] == b"S":
            item.stmt_name = name
            known = self._statements.get(name)
        else:
            item.portal = name
            stmt = self._portals.get(name)
            item.stmt_name = stmt
            known = self._statements.get(stmt) if stmt is not None else None
        if known is not None:
            item.statement, item.truncated = known
        self._push(item, out)

    def _f_execute(
        self, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        portal = _name(_cstr(body, 0)[0])
        item = _Item("Execute", start, ts, size, flags)
        item.portal = portal
        stmt = self._portals.get(portal)
        known = self._statements.get(stmt) if stmt is not None else None
        if known is None:
            self._count("statement_cache_misses")
        else:
            item.statement, item.truncated = known
            item.stmt_name = stmt
        self._push(item, out)

    def _f_close(
        self, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        name = _name(_cstr(body, 1)[0])
        item = _Item("Close", start, ts, size, flags)
        if body[:1] == b"S":
            item.stmt_name = name
            self._statements.pop(name, None)
        else:
            item.portal = name
            self._portals.pop(name, None)
        self._push(item, out)

    def _f_sync(
        self, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        self._push(_Item("Sync", start, ts, size, flags), out)

    def _f_function(
        self, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        self._push(_Item("FunctionCall", start, ts, size, flags), out)

    def _f_copy(
        self, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        self._cin_size += size  # CopyDone / CopyFail: part of the COPY statement's request

    def _f_copy_data(
        self, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        self._cin_msgs += 1
        self._cin_bytes += size - 5
        self._cin_size += size

    def _f_terminate(
        self, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        out.append(ClientNotice(start, ts, size, flags, "Terminate"))

    def _f_ignore(
        self, body: bytes, cut: bool, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        pass

    # -- backend -------------------------------------------------------------------------------------------
    def _ssl_answer(self, byte: int, ts: int, out: list[Message]) -> None:
        hs = self._hs
        if hs is None:  # the server's side ended (EOF) after the request, and then sent more bytes
            raise DecodeError("SSL/GSS answer without a request", chr(byte))
        if hs.r_start < 0:
            hs.r_start = ts
        hs.r_size += 1
        if byte == 0x4E:  # 'N': go on in clear (a StartupMessage, or a GSSENCRequest after SSL)
            hs.encryption = "N"
            self._go(Event.IN_CLEAR)
            return
        if byte == 0x53 or byte == 0x47:  # 'S' / 'G': TLS or GSSAPI encryption from here on
            self._hs = None
            self._go(Event.ENCRYPTED)
            reason = "tls" if byte == 0x53 else "gssapi"
            out.append(StopDecoding(start_ns=ts, end_ns=ts, size=0, flags=0, reason=reason, encrypted=True))
            return
        if byte == 0x45:  # 'E': a server too old for the request sends an ErrorResponse
            hs.r_size -= 1
            self._go(Event.ANSWER_ERROR)
            self._s.hdr += b"E"
            self._s.start = ts
            return
        raise DecodeError("bad SSL/GSS answer", chr(byte))

    def _backend(
        self, t: int, body: bytes, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        if self._sphase is _AUTH:
            self._auth(t, body, size, start, ts, flags, out)
            return
        if t == 0x4E or t == 0x41:  # Notice, Notification: one-way wherever they come
            self._notice(t, body, size, start, ts, flags, out)
            return
        if not self._aligned and not self._align(t, ts):
            return
        handler = _BACKEND_HANDLERS.get(t)
        if handler is None:
            return  # BackendKeyData / Authentication / NegotiateProtocolVersion after start-up: ignored
        if self._items.peek() is None and self._items.untracked_due() is not None:
            # the answer to frontend messages that were not tracked: dropped up to their ReadyForQuery
            if t == 0x5A:
                self._items.drop_answer()
                self._count("untracked_replies")
                self._reset_acc()
                self._reset_response()
                self._take_copy_in()
                self._cycle_reported = False
            return
        if not self._items and t != 0x45:
            # an answer to nothing seen (its request was lost or came before the capture): not paired; each
            # orphan answer (up to its result, or its ReadyForQuery) is handed to the matcher, which counts
            # it as an orphan response
            self._count("orphan_backend_messages")
            if self._r_start < 0:
                self._r_start = start
            self._r_size += size
            self._r_flags |= flags
            if t in _RESULTS or (t == 0x5A and self._orphan_open):
                out.append(self._response(ts, None, None, None))
                self._orphan_open = False
            elif t != 0x5A:
                self._orphan_open = True
            else:
                self._reset_response()
            return
        if self._r_start < 0:
            self._r_start = start
        self._r_size += size
        self._r_flags |= flags
        handler(self, body, ts, out)

    def _align(self, t: int, ts: int) -> bool:
        """Mid-stream: is this backend message the first answer to the oldest pending frontend message?"""
        items = self._items
        head = items.peek()
        if head is not None and head.start <= ts and t in _FIRST_ANSWERS.get(head.op, b""):
            self._aligned = True
            return True
        if t == 0x5A:  # ReadyForQuery ends the cycle the oldest pending messages may belong to
            if head is not None and head.start <= ts:
                while items.peek() is not None:
                    op = items.popleft().op
                    if op in _ENDS_CYCLE:
                        break
            self._aligned = True
            self._reset_acc()
        return False

    def _notice(
        self, t: int, body: bytes, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        if t == 0x41:  # NotificationResponse: pid, channel, payload (not kept)
            pid = _I32.unpack_from(body, 0)[0] if len(body) >= 4 else None
            channel = _name(_cstr(body, 4)[0])
            out.append(
                ServerNotice(start, ts, size, flags, "NotificationResponse", None, None, None, channel, pid)
            )
            return
        severity, sqlstate, message = _fields(body)
        out.append(ServerNotice(start, ts, size, flags, "NoticeResponse", severity, sqlstate, message))

    def _auth(
        self, t: int, body: bytes, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        hs = self._hs
        if hs is None:  # a server talking before any start-up message: not PostgreSQL as we know it
            raise DecodeError("backend message before start-up", chr(t))
        if t == 0x4E:
            self._notice(t, body, size, start, ts, flags, out)
            return
        if hs.r_start < 0:
            hs.r_start = start
        hs.r_size += size
        hs.r_end = ts
        if t == 0x52:  # Authentication*
            kind = _I32.unpack_from(body, 0)[0] if len(body) >= 4 else -1
            if kind == 0:
                if hs.auth is None:
                    hs.auth = "trust"  # AuthenticationOk without a challenge
            elif kind not in (8, 11, 12):  # GSS continue, SASL continue / final belong to their method
                hs.auth = _AUTH_NAMES.get(kind, str(kind))
            hs.last_auth = kind
        elif t == 0x53:  # ParameterStatus
            key, pos, _ = _cstr(body, 0)
            if key == b"server_version":
                hs.version = _cstr(body, pos)[0][:64].decode("utf-8", "replace")
        elif t == 0x4B:  # BackendKeyData: the pid; the secret key is never kept
            hs.pid = _I32.unpack_from(body, 0)[0] if len(body) >= 4 else None
        elif t == 0x5A or t == 0x45:  # ReadyForQuery / ErrorResponse: the start-up is over
            self._hs = None
            severity = sqlstate = message = None
            if t == 0x45:
                severity, sqlstate, message = _fields(body)
            out.append(self._startup_request(hs))
            out.append(
                StartupResult(
                    hs.r_start, ts, hs.r_size, flags, hs.auth, hs.version, hs.pid, severity, sqlstate, message,
                    hs.encryption,
                )
            )  # fmt: skip
            self._go(Event.STARTUP_ENDED)
        elif t != 0x76:  # NegotiateProtocolVersion is part of the start-up; anything else is not
            raise DecodeError("unexpected message during start-up", chr(t))

    def _startup_request(self, hs: _Handshake) -> Startup:
        return Startup(
            hs.start, hs.end, hs.size, hs.flags, hs.message, hs.user, hs.database, hs.app, hs.protocol,
            hs.ssl, hs.gss,
        )  # fmt: skip

    def _head(self, want: str, what: str) -> _Item:
        head = self._items.peek()
        if head is None or head.op != want:
            raise DecodeError(f"unexpected {what}", head.op if head else "nothing pending")
        return head

    def _acknowledge(self, item: _Item) -> None:
        """A Parse/Bind/Describe/Close was answered: it folds into the next report."""
        self._items.popleft()
        self._fold(item)
        if item.statement is not None:
            self._acc_statement = (item.statement, item.truncated, item.stmt_name, item.portal)

    def _b_parse_complete(self, body: bytes, ts: int, out: list[Message]) -> None:
        self._acknowledge(self._head("Parse", "ParseComplete"))

    def _b_bind_complete(self, body: bytes, ts: int, out: list[Message]) -> None:
        self._acknowledge(self._head("Bind", "BindComplete"))

    def _b_close_complete(self, body: bytes, ts: int, out: list[Message]) -> None:
        self._acknowledge(self._head("Close", "CloseComplete"))

    def _b_parameter_description(self, body: bytes, ts: int, out: list[Message]) -> None:
        self._head("Describe", "ParameterDescription")

    def _b_row_description(self, body: bytes, ts: int, out: list[Message]) -> None:
        head = self._items.peek()
        if head is not None and head.op == "Describe":
            self._acknowledge(head)
        elif head is None or head.op not in ("Query", "Execute"):
            raise DecodeError("unexpected RowDescription", head.op if head else "nothing pending")

    def _b_no_data(self, body: bytes, ts: int, out: list[Message]) -> None:
        self._acknowledge(self._head("Describe", "NoData"))

    def _b_data_row(self, body: bytes, ts: int, out: list[Message]) -> None:
        head = self._items.peek()
        if head is None or head.op not in ("Execute", "Query"):
            raise DecodeError("unexpected DataRow", head.op if head else "nothing pending")
        self._rows += 1

    def _b_copy_start(self, body: bytes, ts: int, out: list[Message], direction: str = "in") -> None:
        head = self._items.peek()
        if head is None or head.op not in ("Execute", "Query"):
            raise DecodeError("unexpected COPY response", head.op if head else "nothing pending")
        self._copy_dir = direction

    def _b_copy_in(self, body: bytes, ts: int, out: list[Message]) -> None:
        self._b_copy_start(body, ts, out, "in")

    def _b_copy_out(self, body: bytes, ts: int, out: list[Message]) -> None:
        self._b_copy_start(body, ts, out, "out")

    def _b_copy_both(self, body: bytes, ts: int, out: list[Message]) -> None:
        self._b_copy_start(body, ts, out, "both")

    def _b_copy_data(self, body: bytes, ts: int, out: list[Message]) -> None:
        self._copy_msgs += 1
        self._copy_bytes += self._s.mlen - 4

    def _b_copy_done(self, body: bytes, ts: int, out: list[Message]) -> None:
        pass

    def _b_parameter_status(self, body: bytes, ts: int, out: list[Message]) -> None:
        pass  # a SET changed a reported parameter: part of the answer it belongs to

    def _b_command_complete(self, body: bytes, ts: int, out: list[Message]) -> None:
        tag, command, rows = _tag(body)
        self._result(ts, out, "CommandComplete", tag, command, rows)

    def _b_empty(self, body: bytes, ts: int, out: list[Message]) -> None:
        self._result(ts, out, "EmptyQueryResponse", None, None, None, empty=True)

    def _b_suspended(self, body: bytes, ts: int, out: list[Message]) -> None:
        self._result(ts, out, "PortalSuspended", None, None, None, suspended=True)

    def _b_function_result(self, body: bytes, ts: int, out: list[Message]) -> None:
        item = self._head("FunctionCall", "FunctionCallResponse")
        out.append(self._request(item, "FunctionCall"))
        out.append(self._response(ts, None, None, None))
        self._cycle_reported = True

    def _b_error(self, body: bytes, ts: int, out: list[Message]) -> None:
        severity, sqlstate, message = _fields(body)
        items = self._items
        item = items.peek()
        if item is None:
            self._r_start = -1
            self._r_size = 0
            out.append(
                ServerNotice(
                    self._s.start, ts, self._s.mlen + 1, 0, "ErrorResponse", severity, sqlstate, message
                )
            )
            return
        err = (severity, sqlstate, message)
        if item.op == "Query":
            self._result(ts, out, "ErrorResponse", None, None, None, error=err)
            return
        if item.op == "FunctionCall":
            out.append(self._request(item, "FunctionCall"))
            out.append(self._response(ts, None, None, None, error=err))
            self._cycle_reported = True
            return
        # extended query: the failed message (with what folded before it) is reported, then the server
        # discards everything up to Sync
        if item.op != "Sync":
            items.popleft()
        out.append(self._request(item, item.op))
        out.append(self._response(ts, None, None, None, error=err))
        self._cycle_reported = True
        while (head := items.peek()) is not None and head.op != "Sync":
            self._discard(items.popleft(), out)
        if not items:
            self._skipping = True  # the Sync is still to come: what the client sends until then is skipped
        self._reset_acc()

    def _discard(self, item: _Item, out: list[Message]) -> None:
        """A frontend message the server discarded after an error: an Execute is reported `unanswered`,
        anything else folds into the next report."""
        if item.op == "Execute":
            out.append(self._request(item, "Execute", SkippedRequest))
        else:
            self._fold(item)

    def _fold(self, item: _Item) -> None:
        """Count `item`'s bytes, flags and message into the next report (its statement is not taken)."""
        if self._acc_start < 0:
            self._acc_start = item.start
            self._acc_op = item.op
        self._acc_size += item.size
        self._acc_msgs += 1
        self._acc_flags |= item.flags

    def _b_ready(self, body: bytes, ts: int, out: list[Message]) -> None:
        items = self._items
        head = items.peek()
        if head is None or head.op not in _ENDS_CYCLE:
            raise DecodeError("unexpected ReadyForQuery", head.op if head else "nothing pending")
        item = items.popleft()
        if item.op == "Sync" and (self._acc_msgs or not self._cycle_reported):
            # a cycle without Execute (Parse/Describe/Close ... Sync), or a bare Sync
            out.append(self._request(item, self._acc_op or "Sync"))
            out.append(self._response(ts, None, None, None))
        self._reset_acc()
        self._reset_response()
        self._cycle_reported = False

    def _result(
        self,
        ts: int,
        out: list[Message],
        what: str,
        tag: str | None,
        command: str | None,
        rows: int | None,
        *,
        empty: bool = False,
        suspended: bool = False,
        error: tuple[str | None, str | None, str | None] | None = None,
    ) -> None:
        items = self._items
        item = items.peek()
        if item is None or item.op not in ("Execute", "Query"):
            raise DecodeError(f"unexpected {what}", item.op if item else "nothing pending")
        if item.op == "Execute":
            items.popleft()
            out.append(self._request(item, "Execute"))
        else:
            out.append(self._query_statement(item))
        out.append(self._response(ts, tag, command, rows, empty=empty, suspended=suspended, error=error))
        self._cycle_reported = True

    def _query_statement(self, item: _Item) -> Request:
        """The request of the next statement result of a simple Query."""
        k = item.results
        item.results += 1
        statement: bytes | None = item.statement
        truncated = item.truncated
        if statement is not None and not k and not truncated:
            # the common case, one statement (perhaps with its closing ";"): no tokenizing needed
            body = statement.strip()
            if body.endswith(b";"):
                body = body[:-1].rstrip()
            if b";" not in body and b"$" not in body and b"--" not in body and b"/*" not in body:
                statement = body
                k = -1
        if statement is not None and k >= 0 and (k or b";" in statement):
            pieces = split_statements(statement.decode("utf-8", "replace"), "postgresql")
            if k < len(pieces):
                statement = pieces[k].encode()
                truncated = truncated and k == len(pieces) - 1  # only the last piece can be cut
            elif k or pieces:
                statement, truncated = None, False  # beyond what the cap kept
        first = k <= 0
        copy_msgs, copy_bytes, copy_size = self._take_copy_in()
        return Request(
            item.start, item.end, (item.size if first else 0) + copy_size, item.flags if first else 0,
            "Query", statement, truncated, None, None, 1 if first else 0, copy_msgs, copy_bytes,
            self._opts.keep_literals,
        )  # fmt: skip

    def _take_copy_in(self) -> tuple[int, int, int]:
        got = (self._cin_msgs, self._cin_bytes, self._cin_size)
        self._cin_msgs = self._cin_bytes = self._cin_size = 0
        return got

    def _request(self, item: _Item, op: str, cls: type[Request] = Request) -> Request:
        """The report of `item` with the acknowledged messages folded before it."""
        acc = self._acc_start >= 0
        start = self._acc_start if acc else item.start
        statement, truncated, name, portal = item.statement, item.truncated, item.stmt_name, item.portal
        if statement is None and self._acc_statement is not None:
            statement, truncated, name, _ = self._acc_statement
        copy_msgs, copy_bytes, copy_size = self._take_copy_in()
        msg = cls(
            start, item.end, self._acc_size + item.size + copy_size, self._acc_flags | item.flags, op,
            statement, truncated, name, portal, self._acc_msgs + 1, copy_msgs, copy_bytes,
            self._opts.keep_literals,
        )  # fmt: skip
        self._reset_acc()
        return msg

    def _response(
        self,
        ts: int,
        tag: str | None,
        command: str | None,
        rows: int | None,
        *,
        empty: bool = False,
        suspended: bool = False,
        error: tuple[str | None, str | None, str | None] | None = None,
    ) -> Response:
        severity, sqlstate, message = error if error is not None else (None, None, None)
        msg = Response(
            self._r_start if self._r_start >= 0 else ts, ts, self._r_size, self._r_flags, tag, command, rows,
            self._rows, severity, sqlstate, message, suspended, empty, self._copy_dir, self._copy_msgs,
            self._copy_bytes,
        )  # fmt: skip
        self._reset_response()
        return msg

    def _reset_acc(self) -> None:
        self._acc_start = -1
        self._acc_size = 0
        self._acc_msgs = 0
        self._acc_op = ""
        self._acc_flags = 0
        self._acc_statement = None

    def _reset_response(self) -> None:
        self._r_start = -1
        self._r_size = 0
        self._r_flags = 0
        self._rows = 0
        self._copy_dir = None
        self._copy_msgs = self._copy_bytes = 0

    def _forget(self, ts: int) -> None:
        """Framing was lost: nothing pending can be paired truthfully any more."""
        self._items.clear()
        self._reset_acc()
        self._reset_response()
        self._take_copy_in()
        self._aligned = False
        self._cycle_reported = False
        self._skipping = False
        if self._conn is not Conn.DEAD:
            self._hs = None
        self._go(Event.SYNC_LOST)


_Frontend = Callable[[PostgresDecoder, bytes, bool, int, int, int, int, list[Message]], None]
_FRONTEND_HANDLERS: dict[int, _Frontend] = {
    ord("Q"): PostgresDecoder._f_query,
    ord("P"): PostgresDecoder._f_parse,
    ord("B"): PostgresDecoder._f_bind,
    ord("D"): PostgresDecoder._f_describe,
    ord("E"): PostgresDecoder._f_execute,
    ord("C"): PostgresDecoder._f_close,
    ord("S"): PostgresDecoder._f_sync,
    ord("H"): PostgresDecoder._f_ignore,  # Flush: no answer of its own
    ord("F"): PostgresDecoder._f_function,
    ord("d"): PostgresDecoder._f_copy_data,
    ord("c"): PostgresDecoder._f_copy,
    ord("f"): PostgresDecoder._f_copy,
    ord("X"): PostgresDecoder._f_terminate,
    ord("p"): PostgresDecoder._f_ignore,
}
_Backend = Callable[[PostgresDecoder, bytes, int, list[Message]], None]
_BACKEND_HANDLERS: dict[int, _Backend] = {
    ord("1"): PostgresDecoder._b_parse_complete,
    ord("2"): PostgresDecoder._b_bind_complete,
    ord("3"): PostgresDecoder._b_close_complete,
    ord("t"): PostgresDecoder._b_parameter_description,
    ord("T"): PostgresDecoder._b_row_description,
    ord("n"): PostgresDecoder._b_no_data,
    ord("D"): PostgresDecoder._b_data_row,
    ord("C"): PostgresDecoder._b_command_complete,
    ord("I"): PostgresDecoder._b_empty,
    ord("s"): PostgresDecoder._b_suspended,
    ord("E"): PostgresDecoder._b_error,
    ord("Z"): PostgresDecoder._b_ready,
    ord("G"): PostgresDecoder._b_copy_in,
    ord("H"): PostgresDecoder._b_copy_out,
    ord("W"): PostgresDecoder._b_copy_both,
    ord("d"): PostgresDecoder._b_copy_data,
    ord("c"): PostgresDecoder._b_copy_done,
    ord("V"): PostgresDecoder._b_function_result,
    ord("S"): PostgresDecoder._b_parameter_status,
}


def new_decoder(ctx: DecoderContext) -> PostgresDecoder:
    """Registry factory."""
    return PostgresDecoder(ctx)
